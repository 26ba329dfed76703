//! The operator against a real Kubernetes v1.20.2 API server (+ etcd + kube-controller-manager for
//! owner-reference garbage collection): the objects it writes, weight edits, invalid specs,
//! deletion, restarts, leader election and an API server restart.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const READY: Duration = Duration::from_secs(30);
/// kube-controller-manager's garbage collector learns about new CRDs on its periodic discovery
/// (every 30 s), so collection of objects owned by custom resources can take that long to start.
const COLLECTED: Duration = Duration::from_secs(90);

fn binding() -> Value {
    json!({
        "apiVersion": "kea.dev/v1alpha1", "kind": "GatewayBinding",
        "metadata": {"name": "edge", "namespace": NAMESPACE},
        "spec": {
            "selector": {"istio": "ingressgateway"},
            "routing": {"virtualService": {"gateways": ["istio-system/public"]}},
            "identityProviders": [{"name": "corp", "issuer": "https://idp.example.com", "cluster": "outbound|443||idp.example.com",
                                   "jwksUri": "https://idp.example.com/keys"}],
        },
    })
}

fn pets_api(weights: (u32, u32)) -> Value {
    json!({
        "apiVersion": "kea.dev/v1alpha1", "kind": "ApiDefinition",
        "metadata": {"name": "pets", "namespace": NAMESPACE},
        "spec": {
            "gateway": "edge",
            "hosts": ["pets.example.com"],
            "basePath": "/pets",
            "backends": [
                {"service": "pets-v1", "port": 8080, "version": "v1", "weight": weights.0},
                {"service": "pets-v2", "port": 8080, "version": "v2", "weight": weights.1},
            ],
            "schema": {"operations": [
                {"path": "/{id}", "method": "GET",
                 "parameters": [{"name": "id", "in": "path", "schema": {"type": "integer", "minimum": 1}}],
                 "responses": {"200": {"description": "a pet", "schema": {"type": "object"}}},
                 "auth": {"anonymous": true}},
                {"path": "/", "method": "POST",
                 "requestBody": {"required": true, "schema": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}}},
            ]},
            "auth": {"providers": ["corp"], "scopes": ["pets:write"]},
            "cache": {"enabled": true, "defaultTtl": "30s"},
        },
    })
}

async fn http_route(client: &kube::Client) -> anyhow::Result<Option<Value>> {
    get(
        client,
        "gateway.networking.k8s.io/v1",
        "HTTPRoute",
        NAMESPACE,
        "kea-pets",
    )
    .await
}

async fn routes(client: &kube::Client) -> anyhow::Result<Value> {
    Ok(get(
        client,
        "networking.istio.io/v1beta1",
        "VirtualService",
        NAMESPACE,
        "kea-pets",
    )
    .await?
    .map(|vs| vs["spec"].clone())
    .unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn apis_become_wasm_plugins_routes_and_bundles() {
    let (plane, client) = cluster().await.unwrap();
    let operator = Operator::start(&plane, "solo").unwrap();
    for name in ["pets-v1", "pets-v2"] {
        apply(&client, &service(name, 8080)).await.unwrap();
    }
    apply(&client, &binding()).await.unwrap();
    apply(&client, &pets_api((90, 10))).await.unwrap();
    let api = wait_ready(&client, "ApiDefinition", "pets", READY)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    for kind in ["Accepted", "SchemaValid", "RoutesReady", "PluginsReady"] {
        assert_eq!(condition(&api, kind).unwrap().0, "True", "{kind}: {api}");
    }
    let sha = api["status"]["bundleSha256"].as_str().unwrap().to_string();
    assert_eq!(api["status"]["operations"], 2);
    wait_ready(&client, "GatewayBinding", "edge", READY)
        .await
        .unwrap();

    // The VirtualService, exactly: a route per backend key for the requests the auth plugin
    // marked (exact 90/10), then the weighted route for unmarked ones.
    let v1 = json!({"destination": {"host": "pets-v1.shop.svc.cluster.local", "port": {"number": 8080}},
        "headers": {"response": {"set": {"x-kea-backend-version": "v1"}}}});
    let v2 = json!({"destination": {"host": "pets-v2.shop.svc.cluster.local", "port": {"number": 8080}},
        "headers": {"response": {"set": {"x-kea-backend-version": "v2"}}}});
    let weighted = |route: &Value, weight: u32| {
        let mut route = route.clone();
        route["weight"] = json!(weight);
        route
    };
    let marked = |key: &str| {
        json!([{"uri": {"exact": "/pets"}, "headers": {"x-kea-backend": {"exact": key}}},
               {"uri": {"prefix": "/pets/"}, "headers": {"x-kea-backend": {"exact": key}}}])
    };
    assert_eq!(
        routes(&client).await.unwrap(),
        json!({
            "hosts": ["pets.example.com"],
            "gateways": ["istio-system/public"],
            "http": [
                {"name": "pets-v1", "match": marked("v1"), "route": [weighted(&v1, 100)], "timeout": "5s"},
                {"name": "pets-v2", "match": marked("v2"), "route": [weighted(&v2, 100)], "timeout": "5s"},
                {
                    "name": "pets",
                    "match": [{"uri": {"exact": "/pets"}}, {"uri": {"prefix": "/pets/"}}],
                    "route": [weighted(&v1, 90), weighted(&v2, 10)],
                    "timeout": "5s",
                },
            ],
        })
    );
    // The split in force, and the auth plugin that marks the requests.
    assert_eq!(
        api["status"]["split"],
        json!({"mode": "Exact", "backends": [
            {"key": "v1", "service": "pets-v1", "port": 8080, "weight": 90},
            {"key": "v2", "service": "pets-v2", "port": 8080, "weight": 10},
        ]})
    );
    let vs = get(
        &client,
        "networking.istio.io/v1beta1",
        "VirtualService",
        NAMESPACE,
        "kea-pets",
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(vs["metadata"]["ownerReferences"][0]["kind"], "ApiDefinition");
    assert_eq!(vs["metadata"]["managedFields"][0]["manager"], "kea-operator");

    // By default one WasmPlugin: the combined module, at audit's place, pinned to the built module,
    // with a section per plugin.
    let digests = std::fs::read_to_string(kea_e2e::repo_root().join("dist/SHA256SUMS")).unwrap();
    let plugins = list(&client, "extensions.istio.io/v1alpha1", "WasmPlugin", NAMESPACE)
        .await
        .unwrap();
    assert_modules(&plugins, &[("kea-edge-kea", "kea", "AUTHN", 1000)], &digests);
    let combined = plugins[0]["spec"]["pluginConfig"].clone();
    let sections: Vec<&String> = combined.as_object().unwrap().keys().collect();
    assert_eq!(sections, ["audit", "auth", "cache", "validate"]);
    let config = |section: &str| combined[section].clone();
    let auth = config("auth");
    assert_eq!(
        auth["providers"][0]["jwks"]["remote"]["uri"],
        "https://idp.example.com/keys"
    );
    assert_eq!(
        auth["rules"],
        json!([
            {"match": {"hosts": ["pets.example.com"], "pathTemplate": "/pets/{id}", "methods": ["GET"]},
             "allowAnonymous": true},
            {"match": {"hosts": ["pets.example.com"], "pathPrefix": "/pets"},
             "allowAnonymous": false, "anyOf": ["corp"], "scopes": ["pets:write"]},
        ])
    );
    assert_eq!(
        auth["splits"],
        json!([{"match": {"hosts": ["pets.example.com"], "pathPrefix": "/pets"}, "name": "shop/pets",
                "backends": [{"key": "v1", "weight": 90}, {"key": "v2", "weight": 10}]}])
    );
    let validate = config("validate");
    assert_eq!(
        validate["apis"],
        json!([{"name": "shop/pets", "url": format!("http://localhost:{}/bundles/shop/pets", operator.port),
                "cluster": "kea-operator", "sha256": sha}])
    );
    assert_eq!(config("cache")["rules"][1]["settings"]["defaultTtl"], "30s");

    // The bundle: in a ConfigMap and on the operator's endpoint, with its sha256 as ETag.
    let config_map = get(&client, "v1", "ConfigMap", NAMESPACE, "kea-pets")
        .await
        .unwrap()
        .unwrap();
    let bundle: Value = serde_json::from_str(config_map["data"]["bundle.json"].as_str().unwrap()).unwrap();
    assert_eq!(bundle["sha256"], sha.as_str());
    let served = kea_e2e::http::get(&operator.url("/bundles/shop/pets")).unwrap();
    assert_eq!(served.status, 200);
    assert_eq!(served.header("etag"), Some(format!("\"{sha}\"").as_str()));
    let etag = format!("\"{sha}\"");
    let again = kea_e2e::http::send(
        "GET",
        &operator.url("/bundles/shop/pets"),
        &[("if-none-match", &etag)],
        None,
    )
    .unwrap();
    assert_eq!(again.status, 304);
    assert_eq!(
        kea_e2e::http::get(&operator.url("/bundles/shop/nope"))
            .unwrap()
            .status,
        404
    );
    let metrics = kea_e2e::http::get(&operator.url("/metrics")).unwrap();
    assert!(
        metrics
            .body
            .contains("kea_operator_reconciles_total{controller=\"api\",outcome=\"ok\"}"),
        "{}",
        metrics.body
    );

    // Weights edited three times: one route set each time, replaced, never appended.
    for weights in [(50, 50), (0, 100), (75, 25)] {
        apply(&client, &pets_api(weights)).await.unwrap();
        let spec = eventually(READY, "the new weights", || async {
            let spec = routes(&client).await?;
            let current: Vec<u64> = spec["http"][2]["route"]
                .as_array()
                .map(|r| r.iter().map(|d| d["weight"].as_u64().unwrap_or(0)).collect())
                .unwrap_or_default();
            Ok((current == [u64::from(weights.0), u64::from(weights.1)]).then_some(spec))
        })
        .await
        .unwrap();
        assert_eq!(spec["http"].as_array().unwrap().len(), 3, "{spec}");
        assert_eq!(spec["http"][2]["route"].as_array().unwrap().len(), 2, "{spec}");
        wait_ready(&client, "ApiDefinition", "pets", READY).await.unwrap();
    }

    // The binding asks for Gateway API routes: an HTTPRoute with the same split replaces the
    // VirtualService.
    let mut gateway_api = binding();
    gateway_api["spec"]["routing"] = json!({"httpRoute": {"parentRefs": [{"name": "public"}]}});
    apply(&client, &gateway_api).await.unwrap();
    let route = eventually(READY, "the HTTPRoute", || async {
        let route = http_route(&client).await?;
        let vs_gone = routes(&client).await?.is_null();
        Ok(route.filter(|_| vs_gone))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.warnings()));
    let spec = &route["spec"];
    assert_eq!(spec["hostnames"], json!(["pets.example.com"]));
    assert_eq!(spec["parentRefs"][0]["name"], "public");
    assert_eq!(
        spec["parentRefs"][0]["namespace"], NAMESPACE,
        "qualified with the binding's namespace"
    );
    assert_eq!(spec["rules"].as_array().unwrap().len(), 3, "{spec}");
    assert_eq!(
        spec["rules"][0]["matches"][0]["headers"],
        json!([{"type": "Exact", "name": "x-kea-backend", "value": "v1"}])
    );
    let rule = &spec["rules"][2];
    assert!(rule["matches"][0].get("headers").is_none(), "{rule}");
    assert_eq!(
        rule["matches"][0]["path"],
        json!({"type": "PathPrefix", "value": "/pets"})
    );
    assert_eq!(rule["timeouts"]["request"], "5s");
    let split: Vec<(String, i64)> = rule["backendRefs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|backend| {
            (
                backend["name"].as_str().unwrap().to_string(),
                backend["weight"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(split, [("pets-v1".to_string(), 75), ("pets-v2".to_string(), 25)]);
    assert_eq!(
        rule["backendRefs"][0]["filters"],
        json!([{"type": "ResponseHeaderModifier",
                "responseHeaderModifier": {"set": [{"name": "x-kea-backend-version", "value": "v1"}]}}])
    );
    // The HTTPRoute and the WasmPlugin as stored pass the real CRDs' rules and istiod's checks.
    assert!(assert_written_objects_conform(&client, NAMESPACE).await >= 2);

    // A cluster whose HTTPRoute CRD predates `timeouts` (Gateway API before v1.2) refuses the
    // route (server-side apply: "field not declared in schema", a 500 on 1.20): a condition
    // naming the field and the cause, not a retry loop.
    let mut old_crds =
        kea_e2e::kube::yaml_documents(&kea_e2e::repo_root().join(kea_e2e::kube::THIRD_PARTY_CRD_FILES[1]))
            .unwrap();
    let mut old_crd = old_crds.remove(0);
    kea_e2e::kube::for_kubernetes_1_20(&mut old_crd);
    for version in old_crd["spec"]["versions"].as_array_mut().unwrap() {
        let rule = version
            .pointer_mut("/schema/openAPIV3Schema/properties/spec/properties/rules/items/properties")
            .and_then(Value::as_object_mut)
            .unwrap();
        assert!(rule.remove("timeouts").is_some());
    }
    kea_e2e::kube::apply(&client, old_crd).await.unwrap();
    // The API server takes the new schema in a moment: new timeouts until a write is pruned.
    let mut slower = pets_api((75, 25));
    let mut polls = 0u64;
    let refused = eventually(READY, "ApplyRejected for the old CRD", || {
        polls += 1;
        let poll = polls;
        let (client, mut slower) = (client.clone(), slower.clone());
        async move {
            if poll % 5 == 1 {
                slower["spec"]["timeout"] = json!(format!("{}ms", 7000 + poll));
                apply(&client, &slower).await?;
            }
            let api = get(&client, "kea.dev/v1alpha1", "ApiDefinition", NAMESPACE, "pets")
                .await?
                .unwrap_or_default();
            Ok(
                condition(&api, "RoutesReady").filter(|(status, reason, message)| {
                    status == "False" && reason == "ApplyRejected" && message.contains("timeouts")
                }),
            )
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.warnings()));
    assert!(
        refused
            .2
            .contains(".spec.rules[0].timeouts: field not declared in schema"),
        "{refused:?}"
    );
    assert!(
        refused.2.contains("HTTPRoute CRD is older than KEA needs"),
        "{refused:?}"
    );
    // The current CRD back: the next write stores the timeout and the API is ready again.
    plane.install_third_party_crds().await.unwrap();
    slower["spec"]["timeout"] = json!("8s");
    apply(&client, &slower).await.unwrap();
    wait_ready(&client, "ApiDefinition", "pets", READY).await.unwrap();
    let route = http_route(&client).await.unwrap().unwrap();
    assert_eq!(route["spec"]["rules"][0]["timeouts"]["request"], "8s");
    apply(&client, &pets_api((75, 25))).await.unwrap();

    apply(&client, &binding()).await.unwrap();
    eventually(READY, "back to a VirtualService", || async {
        let route = http_route(&client).await?;
        Ok((route.is_none() && !routes(&client).await?.is_null()).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.warnings()));
    wait_ready(&client, "ApiDefinition", "pets", READY).await.unwrap();
    // The VirtualService and the combined module's WasmPlugin.
    assert!(assert_written_objects_conform(&client, NAMESPACE).await >= 2);

    // Invalid specs: a condition with the reason, the last good routes kept, no crash.
    let mut broken = pets_api((60, 30));
    apply(&client, &broken).await.unwrap();
    let reason = |kind: &'static str, reason: &'static str| {
        let client = client.clone();
        async move {
            eventually(READY, reason, || async {
                let api = get(&client, "kea.dev/v1alpha1", "ApiDefinition", NAMESPACE, "pets")
                    .await?
                    .unwrap_or_default();
                let fresh = api.pointer("/status/observedGeneration") == api.pointer("/metadata/generation");
                Ok(condition(&api, kind)
                    .filter(|(status, found, _)| fresh && status == "False" && found == reason))
            })
            .await
            .unwrap()
        }
    };
    let (_, _, message) = reason("Accepted", "WeightsDoNotSumTo100").await;
    assert!(message.contains("sum to 90"), "{message}");
    assert_eq!(
        routes(&client).await.unwrap()["http"][2]["route"][0]["weight"],
        75,
        "last good routes kept"
    );

    broken = pets_api((75, 25));
    broken["spec"]["schema"] = json!({"openapi": {"openapi": "3.0.3", "info": {"title": "x", "version": "1"},
        "paths": {"/a": {"get": {"responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object", "minimum": "ten"}}}}}}}}}});
    apply(&client, &broken).await.unwrap();
    let (_, _, message) = reason("SchemaValid", "InvalidOpenAPI").await;
    assert!(message.contains("minimum"), "{message}");

    broken = pets_api((75, 25));
    broken["spec"]["backends"][1]["service"] = json!("pets-v3");
    apply(&client, &broken).await.unwrap();
    let (_, _, message) = reason("RoutesReady", "ServiceNotFound").await;
    assert!(message.contains("pets-v3"), "{message}");
    // The Service appears: the API converges on its own.
    apply(&client, &service("pets-v3", 8080)).await.unwrap();
    wait_ready(&client, "ApiDefinition", "pets", READY).await.unwrap();

    broken = pets_api((75, 25));
    broken["spec"]["auth"] = json!({"providers": ["nobody"]});
    apply(&client, &broken).await.unwrap();
    let (_, _, message) = reason("Accepted", "UnknownIdentityProvider").await;
    assert!(message.contains("nobody"), "{message}");

    broken = pets_api((75, 25));
    broken["spec"]["gateway"] = json!("missing");
    apply(&client, &broken).await.unwrap();
    reason("Accepted", "GatewayNotFound").await;
    // No gateway's plugins cover the API any more: its routes are withdrawn, not left unchecked.
    eventually(READY, "the routes withdrawn", || async {
        Ok(routes(&client).await?.is_null().then_some(()))
    })
    .await
    .unwrap();

    // A schema from a ConfigMap.
    let document = "openapi: 3.0.3\ninfo: {title: pets, version: '2'}\npaths:\n  /{id}:\n    get:\n      parameters: [{name: id, in: path, required: true, schema: {type: integer}}]\n      responses: {'200': {description: ok}}\n";
    apply(&client, &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pets-openapi", "namespace": NAMESPACE},
                           "data": {"openapi.yaml": document}})).await.unwrap();
    let mut from_config_map = pets_api((75, 25));
    from_config_map["spec"]["schema"] = json!({"configMapRef": {"name": "pets-openapi"}});
    apply(&client, &from_config_map).await.unwrap();
    let api = wait_ready(&client, "ApiDefinition", "pets", READY).await.unwrap();
    assert_eq!(api["status"]["operations"], 1);
    assert_ne!(api["status"]["bundleSha256"], sha.as_str());

    // On request, one WasmPlugin per plugin in Istio's phases, each with its own section; the
    // combined module's is deleted.
    let mut separate = binding();
    separate["spec"]["plugins"] = json!({"deployment": "Separate"});
    apply(&client, &separate).await.unwrap();
    let plugins = eventually(READY, "the separate WasmPlugins", || async {
        let plugins = list(&client, "extensions.istio.io/v1alpha1", "WasmPlugin", NAMESPACE).await?;
        Ok((plugins.len() == 4).then_some(plugins))
    })
    .await
    .unwrap();
    assert_modules(
        &plugins,
        &[
            ("kea-edge-audit", "audit", "AUTHN", 1000),
            ("kea-edge-auth", "auth", "AUTHN", 100),
            ("kea-edge-cache", "cache", "STATS", 100),
            ("kea-edge-validate", "validate", "AUTHZ", 100),
        ],
        &digests,
    );
    let auth = plugins
        .iter()
        .find(|p| p["metadata"]["name"] == "kea-edge-auth")
        .unwrap();
    assert_eq!(
        auth["spec"]["pluginConfig"]["providers"][0]["jwks"]["remote"]["uri"],
        "https://idp.example.com/keys"
    );
    assert!(assert_written_objects_conform(&client, NAMESPACE).await >= 4);
    // A plugin's own module URL with the combined deployment is refused by field.
    let mut unused = binding();
    unused["spec"]["plugins"] =
        json!({"deployment": "Combined", "auth": {"url": "oci://registry.example/kea/auth:1"}});
    apply(&client, &unused).await.unwrap();
    let refused = eventually(READY, "the unused module URL refused", || async {
        let binding = get(&client, "kea.dev/v1alpha1", "GatewayBinding", NAMESPACE, "edge").await?;
        Ok(binding
            .as_ref()
            .and_then(|b| condition(b, "Accepted"))
            .filter(|(status, reason, _)| status == "False" && reason == "PluginSourceUnused"))
    })
    .await
    .unwrap();
    assert!(refused.2.starts_with("spec.plugins.auth.url: "), "{refused:?}");
    apply(&client, &separate).await.unwrap();

    // Deleting the API: its routes and bundle are garbage-collected, its rules leave the plugins.
    delete(&client, "kea.dev/v1alpha1", "ApiDefinition", NAMESPACE, "pets")
        .await
        .unwrap();
    eventually(COLLECTED, "routes and bundle collected", || async {
        let vs = get(
            &client,
            "networking.istio.io/v1beta1",
            "VirtualService",
            NAMESPACE,
            "kea-pets",
        )
        .await?;
        let cm = get(&client, "v1", "ConfigMap", NAMESPACE, "kea-pets").await?;
        Ok((vs.is_none() && cm.is_none()).then_some(()))
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n{}\n{}",
            operator.warnings(),
            plane.log_tail(kea_e2e::kube::Component::ControllerManager, 40)
        )
    });
    eventually(READY, "the plugins without the API", || async {
        let validate = get(
            &client,
            "extensions.istio.io/v1alpha1",
            "WasmPlugin",
            NAMESPACE,
            "kea-edge-validate",
        )
        .await?;
        let auth = get(
            &client,
            "extensions.istio.io/v1alpha1",
            "WasmPlugin",
            NAMESPACE,
            "kea-edge-auth",
        )
        .await?;
        let no_rules = auth
            .map(|a| {
                a["spec"]["pluginConfig"]["rules"]
                    .as_array()
                    .is_none_or(Vec::is_empty)
            })
            .unwrap_or(false);
        Ok((validate.is_none() && no_rules).then_some(()))
    })
    .await
    .unwrap();

    // Deleting the binding: its WasmPlugins are garbage-collected.
    delete(&client, "kea.dev/v1alpha1", "GatewayBinding", NAMESPACE, "edge")
        .await
        .unwrap();
    eventually(COLLECTED, "WasmPlugins collected", || async {
        Ok(
            list(&client, "extensions.istio.io/v1alpha1", "WasmPlugin", NAMESPACE)
                .await?
                .is_empty()
                .then_some(()),
        )
    })
    .await
    .unwrap();
    let logs = operator.logs();
    assert!(!logs.contains("panicked"), "{logs}");
}

/// `plugins` (WasmPlugins) are exactly `expected` (name, module, phase, priority), each on the
/// ingress gateway's pods, failing closed, owned by the binding and pinned to the built module.
fn assert_modules(plugins: &[Value], expected: &[(&str, &str, &str, i64)], digests: &str) {
    let mut plugins: Vec<&Value> = plugins.iter().collect();
    plugins.sort_by_key(|plugin| plugin["metadata"]["name"].as_str().unwrap().to_string());
    let found: Vec<(&str, &str, i64)> = plugins
        .iter()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap(),
                p["spec"]["phase"].as_str().unwrap(),
                p["spec"]["priority"].as_i64().unwrap(),
            )
        })
        .collect();
    let wanted: Vec<(&str, &str, i64)> = expected
        .iter()
        .map(|&(name, _, phase, priority)| (name, phase, priority))
        .collect();
    assert_eq!(found, wanted);
    for (plugin, (_, module, ..)) in plugins.iter().zip(expected) {
        let spec = &plugin["spec"];
        assert_eq!(
            spec["selector"],
            json!({"matchLabels": {"istio": "ingressgateway"}})
        );
        assert!(
            spec["url"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/dist/{module}.wasm")),
            "{spec}"
        );
        assert!(
            digests.contains(&format!("{}  {module}.wasm", spec["sha256"].as_str().unwrap())),
            "{spec}"
        );
        assert_eq!(spec["failStrategy"], "FAIL_CLOSE");
        assert_eq!(plugin["metadata"]["ownerReferences"][0]["kind"], "GatewayBinding");
    }
}
