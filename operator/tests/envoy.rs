//! End to end: the `pluginConfig`s the operator writes into the WasmPlugins (on a real Kubernetes
//! v1.20.2 API server) loaded into real Envoy with the built plugins; the validate plugin fetches
//! the API's bundle from the operator's `/bundles/` endpoint; traffic is checked.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use kea_e2e::envoy::EnvoyBuilder;
use kea_e2e::http;
use kea_e2e::idp::Idp;
use kea_e2e::jose::KeySet;
use kea_e2e::upstream::Upstream;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn token(keys: &KeySet, issuer: &str, scope: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    keys.mint_one(
        json!({"alg": "RS256", "claims": {"iss": issuer, "aud": "orders", "sub": "alice",
        "scope": scope, "iat": now, "exp": now + 600}}),
    )
    .unwrap()
}

// A plain test with its own runtime for the Kubernetes calls: the identity provider and the
// upstream run their own runtimes, which must not start or stop inside another one.
#[test]
fn plugin_configs_from_the_cluster_run_in_envoy() {
    let keys = KeySet::generate().unwrap();
    let idp = Idp::start().unwrap();
    idp.set_jwks(keys.jwks().unwrap());
    let upstream = Upstream::start().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (plane, client) = runtime.block_on(cluster()).unwrap();
    let operator = Operator::start(&plane, "solo").unwrap();
    runtime.block_on(configure(&client, &idp, &operator));
    let envoy = runtime.block_on(gateway(&client, &idp, &operator, &upstream));

    check_traffic(&envoy, &keys, &idp, &upstream);
    drop(envoy);
    drop(plane);
}

async fn configure(client: &kube::Client, idp: &Idp, operator: &Operator) {
    apply(client, &service("orders", 8080)).await.unwrap();
    apply(
        client,
        &json!({
            "apiVersion": "kea.dev/v1alpha1", "kind": "GatewayBinding",
            "metadata": {"name": "edge", "namespace": NAMESPACE},
            "spec": {
                "selector": {"istio": "ingressgateway"},
                "routing": {"virtualService": {"gateways": ["istio-system/ingressgateway"]}},
                "identityProviders": [{"name": "corp", "issuer": idp.issuer(), "audiences": ["orders"],
                                       "jwksUri": idp.jwks_uri(), "cluster": "idp"}],
                "audit": {"redactHeaders": ["x-internal"]},
            },
        }),
    )
    .await
    .unwrap();
    apply(client, &json!({
        "apiVersion": "kea.dev/v1alpha1", "kind": "ApiDefinition",
        "metadata": {"name": "orders", "namespace": NAMESPACE},
        "spec": {
            "gateway": "edge", "hosts": ["*"], "basePath": "/echo",
            "backends": [{"service": "orders", "port": 8080}],
            "schema": {"operations": [
                {"path": "/{id}", "method": "GET", "auth": {"anonymous": true},
                 "parameters": [{"name": "id", "in": "path", "schema": {"type": "integer", "minimum": 1}}]},
                {"path": "/", "method": "POST",
                 "requestBody": {"required": true, "schema": {"type": "object", "required": ["item"],
                                 "properties": {"item": {"type": "string"}, "quantity": {"type": "integer", "minimum": 1}}}}},
            ]},
            "auth": {"providers": ["corp"], "scopes": ["orders:write"]},
            "cache": {"enabled": true, "defaultTtl": "60s"},
        },
    }))
    .await
    .unwrap();
    wait_ready(client, "ApiDefinition", "orders", Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    // What the operator wrote passes the real CRDs' rules and istiod's checks.
    assert!(assert_written_objects_conform(client, NAMESPACE).await >= 2);
}

/// Envoy with the WasmPlugins' configs (by default the combined module), in Istio's phase/priority
/// order.
async fn gateway(
    client: &kube::Client,
    idp: &Idp,
    operator: &Operator,
    upstream: &Upstream,
) -> kea_e2e::envoy::Envoy {
    let mut plugins = list(client, "extensions.istio.io/v1alpha1", "WasmPlugin", NAMESPACE)
        .await
        .unwrap();
    let phase_rank = |p: &Value| match p["spec"]["phase"].as_str() {
        Some("AUTHN") => 0,
        Some("AUTHZ") => 1,
        _ => 2,
    };
    plugins.sort_by_key(|p| (phase_rank(p), -p["spec"]["priority"].as_i64().unwrap_or(0)));
    let mut envoy = EnvoyBuilder::new(upstream.port)
        .concurrency(2)
        .cluster("idp", idp.port())
        .cluster("kea-operator", operator.port);
    let mut order = Vec::new();
    for plugin in &plugins {
        // `kea-edge-<module>`: `kea` for the combined module, else the plugin's.
        let name = plugin["metadata"]["name"]
            .as_str()
            .unwrap()
            .trim_start_matches("kea-edge-")
            .to_string();
        envoy = envoy
            .plugin(&name, plugin["spec"]["pluginConfig"].clone())
            .unwrap();
        order.push(name);
    }
    assert_eq!(order, ["kea"]);
    let sections: Vec<&String> = plugins[0]["spec"]["pluginConfig"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(sections, ["audit", "auth", "cache", "validate"]);
    envoy.start().unwrap()
}

fn check_traffic(envoy: &kea_e2e::envoy::Envoy, keys: &KeySet, idp: &Idp, upstream: &Upstream) {
    // Valid anonymous read: passes (once the bundle is fetched from the operator).
    kea_e2e::wait_for(Duration::from_secs(20), "the bundle to load", || {
        http::get(&envoy.url("/echo/5")).ok().filter(|r| r.status == 200)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", envoy.logs()));
    let before = upstream.hits();

    let bad = http::get(&envoy.url("/echo/0")).unwrap();
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(bad.header("content-type"), Some("application/problem+json"));
    // Paths the API does not describe need credentials first (auth runs before validation).
    assert_eq!(http::get(&envoy.url("/echo/5/extra")).unwrap().status, 401);

    let body = br#"{"item": "tea", "quantity": 2}"#;
    let post = |token: Option<&str>, body: &[u8]| {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(auth) = &auth {
            headers.push(("authorization", auth.as_str()));
        }
        http::send("POST", &envoy.url("/echo/"), &headers, Some(body)).unwrap()
    };
    let anonymous = post(None, body);
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert!(anonymous
        .header("www-authenticate")
        .unwrap_or_default()
        .starts_with("Bearer"));
    let reader = token(keys, &idp.issuer(), "orders:read");
    assert_eq!(post(Some(&reader), body).status, 403);
    let writer = token(keys, &idp.issuer(), "orders:write");
    let auth = format!("Bearer {writer}");
    let unknown = http::send(
        "GET",
        &envoy.url("/echo/5/extra"),
        &[("authorization", &auth)],
        None,
    )
    .unwrap();
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let invalid = post(Some(&writer), br#"{"quantity": 0}"#);
    assert_eq!(invalid.status, 400, "{}", invalid.body);
    assert_eq!(upstream.hits(), before, "nothing rejected reached the upstream");
    let accepted = post(Some(&writer), body);
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    assert_eq!(upstream.hits(), before + 1);

    // The cache rule: a second read is served by the cache.
    let first = http::get(&envoy.url("/echo/7")).unwrap();
    let second = http::get(&envoy.url("/echo/7")).unwrap();
    assert_eq!(first.header("x-kea-cache"), Some("MISS"), "{:?}", first.headers);
    assert_eq!(second.header("x-kea-cache"), Some("HIT"), "{:?}", second.headers);

    // The audit plugin recorded the validation rejection.
    let record = envoy
        .wait_for_record("url.path", "/echo/0")
        .unwrap_or_else(|e| panic!("{e}\n{}", envoy.logs()));
    assert_eq!(record["http.response.status_code"], 400, "{record}");
    assert_eq!(record["kea.validation.result"], "failed", "{record}");
}
