//! End-to-end: `kea render` (its library, `kea_operator::offline`) turns a GatewayBinding and two
//! ApiDefinitions into an Envoy configuration, and real Envoy runs it with the built plugins:
//! routes by host and base path, an 80/20 split across two backends, and an API whose schema is
//! written as CRD fields, enforced by the validate plugin.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use anyhow::{Context, Result};
use kea_e2e::envoy::EnvoyProcess;
use kea_e2e::http::{self, Response};
use kea_e2e::upstream::Upstream;
use kea_e2e::{free_port, plugin_wasm};
use kea_operator::offline::{self, RenderArgs};
use serde_json::{json, Value};
use std::fs;
use std::path::Path;

const RESOURCES: &str = r#"
apiVersion: kea.dev/v1alpha1
kind: GatewayBinding
metadata: {name: edge, namespace: shop}
spec:
  selector: {istio: ingressgateway}
---
# 80/20 between two versions of the catalog.
apiVersion: kea.dev/v1alpha1
kind: ApiDefinition
metadata: {name: catalog, namespace: shop}
spec:
  gateway: edge
  hosts: [api.test]
  basePath: /catalog
  backends:
    - {service: catalog, port: 8080, version: v1, weight: 80}
    - {service: catalog-canary, port: 8080, version: v2, weight: 20}
  auth: {anonymous: true}
  schema:
    operations:
      - {path: /items, method: GET}
---
# Operations written as fields, enforced.
apiVersion: kea.dev/v1alpha1
kind: ApiDefinition
metadata: {name: orders, namespace: shop}
spec:
  gateway: edge
  hosts: [api.test]
  basePath: /orders
  timeout: 2s
  auth: {anonymous: true}
  backends:
    - {service: orders, port: 8080}
  schema:
    operations:
      - path: /{id}
        method: GET
        parameters:
          - {name: id, in: path, schema: {type: integer, minimum: 1}}
      - path: /{id}/lines
        method: POST
        parameters:
          - {name: id, in: path, schema: {type: integer, minimum: 1}}
        requestBody:
          required: true
          schema:
            type: object
            additionalProperties: false
            required: [sku, quantity]
            properties:
              sku: {type: string, minLength: 1}
              quantity: {type: integer, minimum: 1}
  validation:
    mode: enforce
"#;

/// Envoy running a rendered configuration; stopped when dropped.
struct Gateway {
    envoy: EnvoyProcess,
    port: u16,
    config: Value,
    _dir: tempfile::TempDir,
}

impl Gateway {
    fn send(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<Response> {
        let mut all = vec![("host", host)];
        all.extend_from_slice(headers);
        http::send(
            method,
            &format!("http://127.0.0.1:{}{path}", self.port),
            &all,
            body.map(str::as_bytes),
        )
    }

    fn logs(&self) -> String {
        self.envoy.log_tail(40)
    }
}

/// Renders the resources with the three upstreams as the Services, and starts Envoy on the result.
fn start(v1: &Upstream, v2: &Upstream, orders: &Upstream) -> Result<Gateway> {
    // Free ports are picked, then bound by Envoy: a parallel test may take one in between.
    for attempt in 1.. {
        match start_once(v1, v2, orders) {
            Err(error) if attempt < 3 && format!("{error:#}").contains("ddress already in use") => continue,
            other => return other,
        }
    }
    unreachable!()
}

fn start_once(v1: &Upstream, v2: &Upstream, orders: &Upstream) -> Result<Gateway> {
    let dir = tempfile::tempdir()?;
    let resources = dir.path().join("resources.yaml");
    fs::write(&resources, RESOURCES)?;
    let output = dir.path().join("envoy.yaml");
    let (port, admin) = (free_port()?, free_port()?);
    let dist = plugin_wasm("kea")?
        .parent()
        .map(Path::to_path_buf)
        .context("dist")?;
    let named = |text: String| text.parse().map_err(anyhow::Error::msg);
    let mut args = RenderArgs::new(vec![resources]);
    args.output = Some(output.clone());
    args.listen = format!("127.0.0.1:{port}").parse()?;
    args.admin = format!("127.0.0.1:{admin}").parse()?;
    args.plugins_dir = dist;
    args.services = vec![
        named(format!("catalog=127.0.0.1:{}", v1.port))?,
        named(format!("catalog-canary.shop=127.0.0.1:{}", v2.port))?,
        named(format!("orders:8080=127.0.0.1:{}", orders.port))?,
    ];
    offline::run(&args)?;
    let config: Value = serde_yaml_ng::from_str(&fs::read_to_string(&output)?)?;

    let envoy = EnvoyProcess::start(&output, admin, &dir.path().join("envoy.log"))?;
    Ok(Gateway {
        envoy,
        port,
        config,
        _dir: dir,
    })
}

#[test]
fn a_rendered_gateway_routes_splits_and_validates() -> Result<()> {
    let (v1, v2, orders) = (Upstream::start()?, Upstream::start()?, Upstream::start()?);
    let gateway = start(&v1, &v2, &orders)?;

    // One filter, the combined module, with the plugins the resources need: audit (on by
    // default), auth (no identity providers, but the catalog splits exactly: the splitter is in
    // the auth plugin) and validate (there are APIs); no cache settings, so no cache.
    let hcm =
        &gateway.config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let filters: Vec<&str> = hcm["http_filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(filters, ["kea", "envoy.filters.http.router"]);
    let text = hcm["http_filters"][0]["typed_config"]["config"]["configuration"]["value"]
        .as_str()
        .unwrap();
    let sections: Value = serde_json::from_str(text)?;
    let names: Vec<&String> = sections.as_object().unwrap().keys().collect();
    assert_eq!(names, ["audit", "auth", "validate"]);

    // A valid request reaches the orders service.
    let ok = gateway.send("GET", "api.test", "/orders/7", &[], None)?;
    assert_eq!(ok.status, 200, "{}\n{}", ok.body, gateway.logs());
    assert_eq!(orders.hits(), 1);
    let line = json!({"sku": "kea-1", "quantity": 2}).to_string();
    let json_type = [("content-type", "application/json")];
    let created = gateway.send("POST", "api.test:80", "/orders/7/lines", &json_type, Some(&line))?;
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(orders.hits(), 2);

    // Invalid ones are answered by the gateway with problem+json; the service sees nothing.
    let bad_body = json!({"sku": "", "quantity": 0, "gift": true}).to_string();
    for (method, path, body) in [
        ("POST", "/orders/7/lines", Some(bad_body.as_str())),
        ("GET", "/orders/zero", None),
        ("GET", "/orders/0", None),
    ] {
        let response = gateway.send(method, "api.test", path, &json_type, body)?;
        assert_eq!(response.status, 400, "{method} {path}: {}", response.body);
        assert_eq!(response.header("content-type"), Some("application/problem+json"));
        assert_eq!(response.json()["status"], 400);
    }
    assert_eq!(orders.hits(), 2, "no invalid request reached the upstream");

    // 80/20 across the catalog's two backends, each answer naming its version (exactly 160/40
    // with the auth plugin's splitter marking requests; within sampling noise on the weighted
    // fallback route without it).
    let (mut v1_answers, mut v2_answers) = (0, 0);
    for _ in 0..200 {
        let response = gateway.send("GET", "api.test", "/catalog/items", &[], None)?;
        assert_eq!(response.status, 200, "{}", response.body);
        match response.header("x-kea-backend-version") {
            Some("v1") => v1_answers += 1,
            Some("v2") => v2_answers += 1,
            other => panic!("x-kea-backend-version {other:?}"),
        }
    }
    assert_eq!((v1.hits(), v2.hits()), (v1_answers, v2_answers));
    assert_eq!(v1.hits() + v2.hits(), 200);
    let share = v1.hits() as f64 / 200.0 * 100.0;
    assert!(
        (70.0..=90.0).contains(&share),
        "v1 got {share}% of the requests, not about 80%"
    );

    // A host no API serves, or a path outside every base path: Envoy's own 404.
    let before = v1.hits() + v2.hits() + orders.hits();
    for (host, path) in [
        ("unknown.test", "/orders/7"),
        ("api.test", "/catalogue"),
        ("api.test", "/"),
    ] {
        let response = gateway.send("GET", host, path, &[], None)?;
        assert_eq!(response.status, 404, "{host}{path}: {}", response.body);
        assert_ne!(
            response.header("content-type"),
            Some("application/problem+json"),
            "{host}{path}"
        );
    }
    assert_eq!(v1.hits() + v2.hits() + orders.hits(), before);
    Ok(())
}
