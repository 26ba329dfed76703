//! Conformance: every object the operator writes — for the demo, the documented examples and a
//! generated set of edge cases, with Istio routing (bound to an Istio Gateway, or to the mesh)
//! and with Gateway API routing — is accepted by the real Istio 1.30.3 and Gateway API v1.6.1
//! CRDs (pruning, defaults, schema, CEL rules) and by istiod's webhook checks
//! (`kea_e2e::conformance`). What no target can express is refused by the spec checks with a
//! reason, never rendered.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use kea_e2e::conformance::Crds;
use kea_e2e::repo_root;
use kea_operator::crd::{GatewayBindingSpec, PluginSource};
use kea_operator::offline::kubernetes_objects;
use kea_operator::render::plugins::Module;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn crds() -> &'static Crds {
    static CRDS: OnceLock<Crds> = OnceLock::new();
    CRDS.get_or_init(|| Crds::vendored().expect("the vendored CRDs load"))
}

fn source(_: &GatewayBindingSpec, module: Module) -> PluginSource {
    PluginSource {
        url: format!("oci://registry.example/kea/{}:0.1.0", module.name()),
        sha256: Some("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into()),
    }
}

/// How a binding routes and attaches, as a cluster would have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Routing {
    /// VirtualServices bound to the Istio ingress Gateway, plugins on its pods.
    IstioGateway,
    /// VirtualServices bound to the mesh (no gateways: the default), plugins on its pods.
    IstioMesh,
    /// HTTPRoutes on a Gateway API Gateway, plugins attached by `targetRefs`.
    GatewayApi,
    /// Both route kinds.
    Both,
}

const ROUTINGS: [Routing; 4] = [
    Routing::IstioGateway,
    Routing::IstioMesh,
    Routing::GatewayApi,
    Routing::Both,
];

/// `binding` (a GatewayBinding document) attached and routed as `routing` says.
fn routed(binding: &Value, routing: Routing) -> Value {
    let mut binding = binding.clone();
    let spec = binding["spec"].as_object_mut().expect("a spec");
    spec.remove("standalone");
    spec.remove("selector");
    spec.remove("targetRefs");
    let istio = json!({"gateways": ["istio-system/ingressgateway"]});
    let gateway_api = json!({"parentRefs": [{"name": "public", "namespace": "gateways"}]});
    let (attach, value, routes) = match routing {
        Routing::IstioGateway => (
            "selector",
            json!({"istio": "ingressgateway"}),
            json!({"virtualService": istio}),
        ),
        Routing::IstioMesh => ("selector", json!({"istio": "ingressgateway"}), json!({})),
        Routing::GatewayApi => (
            "targetRefs",
            json!([{"name": "public"}]),
            json!({"httpRoute": gateway_api}),
        ),
        Routing::Both => (
            "selector",
            json!({"istio": "ingressgateway"}),
            json!({"virtualService": istio, "httpRoute": gateway_api}),
        ),
    };
    spec.insert(attach.into(), value);
    spec.insert("routing".into(), routes);
    binding
}

fn yaml_documents(path: &Path) -> Vec<Value> {
    kea_e2e::kube::yaml_documents(path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
}

fn write_yaml(dir: &Path, name: &str, documents: &[Value]) -> PathBuf {
    let text: Vec<String> = documents
        .iter()
        .map(|document| serde_yaml_ng::to_string(document).expect("YAML"))
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, text.join("---\n")).expect("write");
    path
}

/// Renders `binding` + `files` for `routing` and checks every object; the refusal's text when
/// the operator refuses a resource.
fn render_and_check(binding: &Value, files: &[PathBuf], routing: Routing) -> Result<Vec<Value>, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut all = vec![write_yaml(
        dir.path(),
        "binding.yaml",
        &[routed(binding, routing)],
    )];
    all.extend(files.iter().cloned());
    let objects = kubernetes_objects(&all, "default", &source).map_err(|e| format!("{e:#}"))?;
    let mut violations = Vec::new();
    for object in &objects {
        let kind = object["kind"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        for violation in crds().check(object) {
            violations.push(format!("{routing:?} {kind} {name}: {violation}"));
        }
    }
    assert!(
        violations.is_empty(),
        "a real cluster refuses what the operator writes:\n{}\n\nobjects:\n{}",
        violations.join("\n"),
        serde_json::to_string_pretty(&objects).unwrap_or_default()
    );
    Ok(objects)
}

fn kinds(objects: &[Value]) -> Vec<String> {
    let mut kinds: Vec<String> = objects
        .iter()
        .map(|object| {
            format!(
                "{} {}",
                object["kind"].as_str().unwrap_or_default(),
                object["metadata"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    kinds.sort();
    kinds
}

/// The demo's secrets, as run.sh exports them (the auth plugin's configuration names them).
fn demo_environment() {
    std::env::set_var("KEA_OIDC_CLIENT_SECRET", "kea-web-secret-kea-web-secret-kea-web");
    std::env::set_var(
        "KEA_SESSION_KEY",
        "demo-session-key-replace-with-openssl-rand-base64-32",
    );
}

#[test]
fn the_demo_gateway_conforms_with_every_routing() {
    demo_environment();
    let demo = repo_root().join("envoy-examples/gateway");
    let binding = yaml_documents(&demo.join("gateway.yaml")).remove(0);
    let files = [demo.join("apis.yaml"), demo.join("models.yaml")];
    for routing in ROUTINGS {
        // The separate modules once, the combined module (the default) otherwise.
        let separate = routing == Routing::Both;
        let mut binding = binding.clone();
        if separate {
            binding["spec"]["plugins"]["deployment"] = json!("Separate");
        }
        let objects = render_and_check(&binding, &files, routing);
        let objects = match (routing, objects) {
            // The demo serves any host ("*"), which Istio refuses on mesh-bound VirtualServices.
            (Routing::IstioMesh, Err(refused)) => {
                assert!(refused.contains("WildcardHostOnMesh"), "{refused}");
                continue;
            }
            (Routing::IstioMesh, Ok(objects)) => {
                panic!("a `*` host bound to the mesh was rendered: {:?}", kinds(&objects))
            }
            (_, objects) => objects.unwrap_or_else(|refused| panic!("{routing:?}: {refused}")),
        };
        let kinds = kinds(&objects);
        let routes_per_api = usize::from(routing != Routing::GatewayApi)
            + usize::from(matches!(routing, Routing::GatewayApi | Routing::Both));
        // pets, orders, admin, and the model's weighted and pinned ApiDefinitions.
        let routes = kinds
            .iter()
            .filter(|k| k.starts_with("VirtualService kea-") || k.starts_with("HTTPRoute"))
            .count();
        assert_eq!(routes, 5 * routes_per_api + 1, "{routing:?}: {kinds:?}");
        assert_eq!(
            kinds.iter().filter(|k| k.starts_with("WasmPlugin")).count(),
            if separate { 4 } else { 1 },
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&"VirtualService kea-demo-docs".to_string()),
            "{kinds:?}"
        );
        // "Any host" is no hostnames on an HTTPRoute, never `*`.
        for route in objects.iter().filter(|o| o["kind"] == "HTTPRoute") {
            assert!(route["spec"].get("hostnames").is_none(), "{route}");
        }
    }
}

#[test]
fn the_cluster_example_and_the_documented_model_conform() {
    demo_environment();
    let cluster = repo_root().join("envoy-examples/cluster");
    let binding = yaml_documents(&cluster.join("gateway.yaml")).remove(0);
    for routing in [Routing::IstioGateway, Routing::GatewayApi, Routing::Both] {
        let objects = render_and_check(&binding, &[cluster.join("apis.yaml")], routing)
            .unwrap_or_else(|refused| panic!("{routing:?}: {refused}"));
        assert!(
            objects.iter().any(|o| o["kind"] == "WasmPlugin"),
            "{:?}",
            kinds(&objects)
        );
    }

    // The Model of the operator's README, on a gateway `edge` with the identity provider it names.
    let readme = std::fs::read_to_string(repo_root().join("operator/README.md")).expect("README");
    let blocks: Vec<Value> = readme
        .split("```yaml\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .filter(|block| block.contains("kind: Model") || block.contains("kind: ApiDefinition"))
        .map(|block| serde_yaml_ng::from_str(block).expect("a README example is YAML"))
        .collect();
    assert!(!blocks.is_empty(), "the README documents a Model");
    let dir = tempfile::tempdir().expect("tempdir");
    let examples = write_yaml(dir.path(), "examples.yaml", &blocks);
    let edge = json!({
        "apiVersion": "kea.dev/v1alpha1",
        "kind": "GatewayBinding",
        "metadata": {"name": "edge"},
        "spec": {
            "identityProviders": [{"name": "clients", "issuer": "https://idp.example.com", "jwksUri": "https://idp.example.com/jwks", "audiences": ["models"], "cluster": "idp"}],
            "docsHost": "docs.example.com",
        },
    });
    for routing in ROUTINGS {
        let objects = render_and_check(&edge, std::slice::from_ref(&examples), routing)
            .unwrap_or_else(|refused| panic!("{routing:?}: {refused}"));
        let kinds = kinds(&objects);
        assert!(
            kinds.iter().any(|k| k.contains("kea-model-iris")),
            "{routing:?}: {kinds:?}"
        );
    }
}

/// An ApiDefinition on the gateway `edge` with `changes` merged into a plain spec.
fn edge_api(name: &str, changes: Value) -> Value {
    let mut spec = json!({
        "gateway": "edge",
        "hosts": ["api.example.com"],
        "basePath": "/api",
        "backends": [{"service": "api", "port": 8080}],
        "auth": {"anonymous": true},
        "schema": {"operations": [{"path": "/items", "method": "GET"}]},
    });
    if let (Some(spec), Value::Object(changes)) = (spec.as_object_mut(), changes) {
        spec.extend(changes);
    }
    json!({"apiVersion": "kea.dev/v1alpha1", "kind": "ApiDefinition", "metadata": {"name": name}, "spec": spec})
}

fn backends(count: usize) -> Value {
    let weights: Vec<usize> = (0..count)
        .map(|i| 100 / count + usize::from(i < 100 % count))
        .collect();
    Value::Array(
        weights
            .iter()
            .enumerate()
            .map(|(i, weight)| json!({"service": format!("api-v{i}"), "port": 8080, "version": format!("v{i}"), "weight": weight}))
            .collect(),
    )
}

/// A refusal expected with `reason` for the routings listed.
type Refusal<'a> = (&'a str, &'a [Routing]);

/// Generated edge cases: each is either rendered into objects a real cluster accepts, or refused
/// with the reason given — for the routings named (accepted with the others).
#[test]
fn generated_edge_cases_conform_or_are_refused_with_a_reason() {
    let gateway_api: &[Routing] = &[Routing::GatewayApi, Routing::Both];
    let in_cluster: &[Routing] = &ROUTINGS;
    let many_hosts =
        |count: usize| Value::Array((0..count).map(|i| json!(format!("h{i}.example.com"))).collect());
    let long_name = "a".repeat(63);
    let cases: Vec<(&str, Value, Option<Refusal>)> = vec![
        ("one-backend", json!({}), None),
        ("ten-backends", json!({"backends": backends(10)}), None),
        (
            "sixteen-backends",
            json!({"backends": backends(16)}),
            Some(("TooManyRules", gateway_api)),
        ),
        (
            "sixteen-backends-random",
            json!({"backends": backends(16), "split": {"mode": "Random"}}),
            None,
        ),
        ("fifteen-backends", json!({"backends": backends(15)}), None),
        // Exact splits, stickiness and mirrors: per-key marked routes before the weighted one.
        ("split-two", json!({"backends": backends(2)}), None),
        (
            "split-two-sticky-principal",
            json!({"backends": backends(2), "split": {"sticky": {"by": "Principal"}}}),
            None,
        ),
        (
            "split-ten-sticky-header",
            json!({"backends": backends(10), "split": {"mode": "Exact", "sticky": {"by": "Header", "header": "x-session-id"}}}),
            None,
        ),
        (
            "mirror-one",
            json!({"mirror": {"service": "shadow", "port": 8080, "percent": 5}}),
            None,
        ),
        (
            "mirror-two-fraction",
            json!({"backends": backends(2), "mirror": {"service": "shadow", "port": 8080, "percent": 0.25}}),
            None,
        ),
        (
            "mirror-all",
            json!({"backends": backends(2), "mirror": {"service": "shadow", "port": 9090, "percent": 100}}),
            None,
        ),
        (
            "mirror-random",
            json!({"backends": backends(2), "split": {"mode": "Random"}, "mirror": {"service": "shadow", "port": 8080, "percent": 12.5}}),
            None,
        ),
        (
            "mirror-seven",
            json!({"backends": backends(7), "mirror": {"service": "shadow", "port": 8080, "percent": 1}}),
            None,
        ),
        (
            "mirror-ten",
            json!({"backends": backends(10), "mirror": {"service": "shadow", "port": 8080, "percent": 1}}),
            Some(("TooManyRules", gateway_api)),
        ),
        (
            "mirror-three-decimals",
            json!({"mirror": {"service": "shadow", "port": 8080, "percent": 0.125}}),
            Some(("InvalidMirror", in_cluster)),
        ),
        (
            "duplicate-keys",
            json!({"backends": [{"service": "a", "port": 80, "version": "v1", "weight": 50}, {"service": "b", "port": 80, "version": "v1", "weight": 50}]}),
            Some(("DuplicateBackendKey", in_cluster)),
        ),
        (
            "sticky-random",
            json!({"backends": backends(2), "split": {"mode": "Random", "sticky": {"by": "Principal"}}}),
            Some(("InvalidSticky", in_cluster)),
        ),
        (
            "sticky-bad-header",
            json!({"backends": backends(2), "split": {"sticky": {"by": "Header", "header": "x session"}}}),
            Some(("InvalidSticky", in_cluster)),
        ),
        (
            "seventeen-backends",
            json!({"backends": backends(17)}),
            Some(("TooManyBackends", gateway_api)),
        ),
        ("sixteen-hosts", json!({"hosts": many_hosts(16)}), None),
        (
            "seventeen-hosts",
            json!({"hosts": many_hosts(17)}),
            Some(("TooManyHosts", gateway_api)),
        ),
        (
            "wildcards",
            json!({"hosts": ["*.example.com", "api.example.org", "*.a.b.example.net"]}),
            None,
        ),
        (
            "uppercase-host",
            json!({"hosts": ["API.example.com"]}),
            Some(("InvalidHost", in_cluster)),
        ),
        (
            "host-with-port",
            json!({"hosts": ["api.example.com:8443"]}),
            Some(("InvalidHost", in_cluster)),
        ),
        (
            "ip-host",
            json!({"hosts": ["10.1.2.3"]}),
            Some(("InvalidHost", in_cluster)),
        ),
        ("timeout-100s500ms", json!({"timeout": "100s 500ms"}), None),
        ("timeout-30h", json!({"timeout": "30h"}), None),
        ("timeout-sub-millisecond", json!({"timeout": "1us"}), None),
        ("timeout-99999h", json!({"timeout": "99999h"}), None),
        (
            "timeout-100000h",
            json!({"timeout": "100000h"}),
            Some(("InvalidTimeout", gateway_api)),
        ),
        ("root-path", json!({"basePath": "/"}), None),
        ("trailing-slash", json!({"basePath": "/v2/models/iris/"}), None),
        ("escaped-space", json!({"basePath": "/a%20b"}), None),
        ("sub-delims", json!({"basePath": "/~user/a:b@c/x+y"}), None),
        (
            "double-slash",
            json!({"basePath": "/a//b"}),
            Some(("InvalidBasePath", in_cluster)),
        ),
        (
            "dot-segment",
            json!({"basePath": "/a/./b"}),
            Some(("InvalidBasePath", in_cluster)),
        ),
        (
            "dot-dot-end",
            json!({"basePath": "/a/.."}),
            Some(("InvalidBasePath", in_cluster)),
        ),
        (
            "encoded-slash",
            json!({"basePath": "/a%2Fb"}),
            Some(("InvalidBasePath", in_cluster)),
        ),
        (
            "fragment",
            json!({"basePath": "/a#b"}),
            Some(("InvalidBasePath", in_cluster)),
        ),
        (long_name.as_str(), json!({}), None),
    ];
    let edge = json!({
        "apiVersion": "kea.dev/v1alpha1",
        "kind": "GatewayBinding",
        "metadata": {"name": "edge"},
        "spec": {"docsHost": "docs.example.com"},
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let mut accepted = 0;
    for (name, changes, refusal) in &cases {
        let file = write_yaml(
            dir.path(),
            &format!("{}.yaml", &name[..name.len().min(40)]),
            &[edge_api(name, changes.clone())],
        );
        for routing in ROUTINGS {
            let expected = refusal
                .filter(|(_, routings)| routings.contains(&routing))
                .map(|(reason, _)| reason);
            match (
                render_and_check(&edge, std::slice::from_ref(&file), routing),
                expected,
            ) {
                (Ok(objects), None) => {
                    accepted += 1;
                    assert!(
                        objects
                            .iter()
                            .any(|o| o["metadata"]["name"] == format!("kea-{name}")),
                        "{name}"
                    );
                    marks_and_splits_agree(name, &objects);
                }
                (Err(refused), Some(reason)) => assert!(
                    refused.contains(reason),
                    "{name} {routing:?}: expected {reason}, got {refused}"
                ),
                (Ok(objects), Some(reason)) => panic!(
                    "{name} {routing:?}: rendered, expected a refusal {reason}: {:?}",
                    kinds(&objects)
                ),
                (Err(refused), None) => panic!("{name} {routing:?}: refused: {refused}"),
            }
        }
    }
    assert!(accepted > 60, "most cases render ({accepted})");
}

/// Routes that match the splitter's marks exist exactly when the auth plugin (present even on
/// this gateway without credentials) splits the API, with the same keys.
fn marks_and_splits_agree(name: &str, objects: &[Value]) {
    let mut marked: Vec<String> = Vec::new();
    for route in objects
        .iter()
        .filter(|o| o["metadata"]["name"] == format!("kea-{name}"))
    {
        let text = route["spec"].to_string();
        for piece in text.split("\"x-kea-backend\"").skip(1) {
            // VirtualService `{"exact": k}`, HTTPRoute `"value": k` (after the name).
            let value = piece
                .split("\"exact\":\"")
                .nth(1)
                .or_else(|| piece.split("\"value\":\"").nth(1))
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_default();
            if !marked.iter().any(|key| key == value) {
                marked.push(value.to_string());
            }
        }
    }
    let module = objects
        .iter()
        .find(|o| o["kind"] == "WasmPlugin" && o["metadata"]["name"] == "kea-edge-kea");
    let split = module.and_then(|module| {
        module["spec"]["pluginConfig"]["auth"]["splits"]
            .as_array()?
            .iter()
            .find(|split| split["name"] == format!("default/{name}"))
            .cloned()
    });
    match split {
        None => assert!(
            marked.is_empty(),
            "{name}: marked routes {marked:?} without a split"
        ),
        Some(split) => {
            let keys: Vec<String> = split["backends"]
                .as_array()
                .unwrap()
                .iter()
                .map(|backend| backend["key"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(marked, keys, "{name}: {split}");
            assert_eq!(split["match"]["pathPrefix"], "/api", "{split}");
        }
    }
}
