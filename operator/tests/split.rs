//! End-to-end: exact traffic splitting, sticky versions and mirroring in real Envoy with two
//! workers. `kea render` renders the resources (the auth plugin marks each request with its
//! backend; the routes match the mark); Envoy reads its listener from a file (LDS), so a weight
//! edit is a live reconfiguration, as xDS is for the operator's gateways. Upstreams count what
//! they receive.
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
use kea_e2e::{free_port, plugin_wasm, wait_for};
use kea_operator::offline::{self, RenderArgs};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

const PRINCIPALS: usize = 200;

fn api_key(index: usize) -> String {
    format!("key-{index:03}-kea-split")
}

/// The resources with `pets` split `weights` (v1, v2).
fn resources(weights: (u32, u32)) -> String {
    let keys: Vec<String> = (0..PRINCIPALS)
        .map(|i| {
            let digest = hex(&Sha256::digest(api_key(i).as_bytes()));
            format!("              - {{client: client-{i:03}, sha256: {digest}}}")
        })
        .collect();
    format!(
        r#"
apiVersion: kea.dev/v1alpha1
kind: GatewayBinding
metadata: {{name: edge, namespace: shop}}
spec:
  selector: {{istio: ingressgateway}}
  plugins:
    auth:
      config:
        apiKeys:
          - name: clients
            sources: [{{header: x-api-key}}]
            keys:
{keys}
---
apiVersion: kea.dev/v1alpha1
kind: ApiDefinition
metadata: {{name: pets, namespace: shop}}
spec:
  gateway: edge
  hosts: [api.test]
  basePath: /pets
  backends:
    - {{service: pets-v1, port: 8080, version: v1, weight: {v1}}}
    - {{service: pets-v2, port: 8080, version: v2, weight: {v2}}}
  auth: {{anonymous: true}}
  schema: {{operations: [{{path: /items, method: GET}}]}}
---
apiVersion: kea.dev/v1alpha1
kind: ApiDefinition
metadata: {{name: thirds, namespace: shop}}
spec:
  gateway: edge
  hosts: [api.test]
  basePath: /thirds
  backends:
    - {{service: third-a, port: 8080, version: a, weight: 33}}
    - {{service: third-b, port: 8080, version: b, weight: 33}}
    - {{service: third-c, port: 8080, version: c, weight: 34}}
  auth: {{anonymous: true}}
  schema: {{operations: [{{path: /items, method: GET}}]}}
---
apiVersion: kea.dev/v1alpha1
kind: ApiDefinition
metadata: {{name: ab, namespace: shop}}
spec:
  gateway: edge
  hosts: [api.test]
  basePath: /ab
  backends:
    - {{service: ab-a, port: 8080, version: a, weight: 50}}
    - {{service: ab-b, port: 8080, version: b, weight: 50}}
  split: {{sticky: {{by: Principal}}}}
  auth: {{providers: [clients]}}
  schema: {{operations: [{{path: /items, method: GET}}]}}
---
apiVersion: kea.dev/v1alpha1
kind: ApiDefinition
metadata: {{name: shadowed, namespace: shop}}
spec:
  gateway: edge
  hosts: [api.test]
  basePath: /shadowed
  backends:
    - {{service: live, port: 8080, version: live}}
  mirror: {{service: shadow, port: 8080, percent: 20}}
  auth: {{anonymous: true}}
  schema: {{operations: [{{path: /items, method: GET}}]}}
"#,
        keys = keys.join("\n"),
        v1 = weights.0,
        v2 = weights.1,
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The upstreams by Service name.
struct Upstreams(BTreeMap<&'static str, Upstream>);

impl Upstreams {
    fn start() -> Result<Self> {
        let mut all = BTreeMap::new();
        for name in [
            "pets-v1", "pets-v2", "third-a", "third-b", "third-c", "ab-a", "ab-b", "live", "shadow",
        ] {
            all.insert(name, Upstream::start()?);
        }
        Ok(Self(all))
    }

    fn hits(&self, name: &str) -> u64 {
        self.0[name].hits()
    }
}

/// Envoy with its listener in a file it watches.
struct Gateway {
    envoy: EnvoyProcess,
    port: u16,
    admin: u16,
    lds: PathBuf,
    dir: tempfile::TempDir,
}

impl Gateway {
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Result<Response> {
        let mut all = vec![("host", "api.test")];
        all.extend_from_slice(headers);
        // A new connection per request: the kernel spreads them over both workers.
        http::send(
            "GET",
            &format!("http://127.0.0.1:{}{path}", self.port),
            &all,
            None,
        )
    }

    fn logs(&self) -> String {
        self.envoy.log_tail(40)
    }

    fn stat(&self, name: &str) -> u64 {
        let stats = http::get(&format!("http://127.0.0.1:{}/stats?filter=^{name}$", self.admin))
            .map(|r| r.body)
            .unwrap_or_default();
        stats
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}: ")))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Renders the resources and has Envoy swap its listener for the new one.
    fn reconfigure(&self, weights: (u32, u32), upstreams: &Upstreams) -> Result<()> {
        let before = self.stat("listener_manager.lds.update_success");
        let (_, listener) = render(
            self.dir.path(),
            &resources(weights),
            upstreams,
            self.port,
            self.admin,
        )?;
        write_lds(&self.lds, &listener)?;
        wait_for(Duration::from_secs(30), "the new listener", || {
            (self.stat("listener_manager.lds.update_success") > before).then_some(())
        })
        .with_context(|| self.logs())?;
        // The old listener drains; new connections reach the new one at once.
        Ok(())
    }
}

/// The rendered bootstrap (without its listener) and the listener.
fn render(dir: &Path, text: &str, upstreams: &Upstreams, port: u16, admin: u16) -> Result<(Value, Value)> {
    let file = dir.join("resources.yaml");
    fs::write(&file, text)?;
    let dist = plugin_wasm("kea")?
        .parent()
        .map(Path::to_path_buf)
        .context("dist")?;
    let mut args = RenderArgs::new(vec![file]);
    args.listen = format!("127.0.0.1:{port}").parse()?;
    args.admin = format!("127.0.0.1:{admin}").parse()?;
    args.plugins_dir = dist;
    args.services = upstreams
        .0
        .iter()
        .map(|(name, upstream)| {
            format!("{name}=127.0.0.1:{}", upstream.port)
                .parse()
                .map_err(anyhow::Error::msg)
        })
        .collect::<Result<_>>()?;
    let mut config = offline::render(&args)?.envoy;
    let listeners = config["static_resources"]
        .as_object_mut()
        .context("static_resources")?
        .remove("listeners")
        .context("listeners")?;
    Ok((config, listeners[0].clone()))
}

fn write_lds(path: &Path, listener: &Value) -> Result<()> {
    let mut listener = listener.clone();
    listener["@type"] = json!("type.googleapis.com/envoy.config.listener.v3.Listener");
    let staged = path.with_extension("new");
    fs::write(&staged, serde_json::to_string(&json!({"resources": [listener]}))?)?;
    // Envoy watches for the file being moved into place.
    fs::rename(&staged, path)?;
    Ok(())
}

fn start(upstreams: &Upstreams, weights: (u32, u32)) -> Result<Gateway> {
    let dir = tempfile::tempdir()?;
    let (port, admin) = (free_port()?, free_port()?);
    let (mut bootstrap, listener) = render(dir.path(), &resources(weights), upstreams, port, admin)?;
    let lds = dir.path().join("lds.json");
    write_lds(&lds, &listener)?;
    // A file-based LDS needs the node's identity.
    bootstrap["node"] = json!({"id": "split-test", "cluster": "split-test"});
    bootstrap["dynamic_resources"] = json!({
        "lds_config": {"path_config_source": {"path": lds.display().to_string()}, "resource_api_version": "V3"},
    });
    let config = dir.path().join("envoy.json");
    fs::write(&config, serde_json::to_string(&bootstrap)?)?;
    let envoy = EnvoyProcess::start(&config, admin, &dir.path().join("envoy.log"))?;
    let gateway = Gateway {
        envoy,
        port,
        admin,
        lds,
        dir,
    };
    // The listener comes from the file: wait until it answers.
    wait_for(Duration::from_secs(30), "the listener", || {
        gateway.get("/pets/items", &[]).ok().filter(|r| r.status == 200)
    })
    .with_context(|| gateway.logs())?;
    Ok(gateway)
}

/// The versions answering `count` requests to `path`, in order.
fn versions(gateway: &Gateway, path: &str, count: usize) -> Result<Vec<String>> {
    (0..count)
        .map(|_| {
            let response = gateway.get(path, &[])?;
            anyhow::ensure!(
                response.status == 200,
                "{path}: {} {}\n{}",
                response.status,
                response.body,
                gateway.logs()
            );
            Ok(response
                .header("x-kea-backend-version")
                .unwrap_or("none")
                .to_string())
        })
        .collect()
}

/// Asserts every window of 100 consecutive answers holds each version's percentage ±1.
fn assert_windows_exact(answers: &[String], expected: &[(&str, usize)]) {
    for start in 0..=answers.len().saturating_sub(100) {
        let window = &answers[start..start + 100];
        for (version, share) in expected {
            let got = window.iter().filter(|v| v == version).count();
            assert!(
                got.abs_diff(*share) <= 1,
                "window at {start}: {version} got {got} of 100, expected {share}: {window:?}"
            );
        }
    }
}

#[test]
fn exact_split_sticky_versions_and_mirroring_in_envoy() -> Result<()> {
    let upstreams = Upstreams::start()?;
    let gateway = start(&upstreams, (90, 10))?;
    let warmup = upstreams.hits("pets-v1") + upstreams.hits("pets-v2");

    // 90/10: exactly 900/100 of 1,000, and every window of 100 is 90/10.
    let answers = versions(&gateway, "/pets/items", 1000)?;
    let count = |version: &str| answers.iter().filter(|v| *v == version).count();
    assert_eq!((count("v1"), count("v2")), (900, 100), "{}", gateway.logs());
    assert_windows_exact(&answers, &[("v1", 90), ("v2", 10)]);
    assert_eq!(
        upstreams.hits("pets-v1") + upstreams.hits("pets-v2") - warmup,
        1000
    );
    // Both workers served (the split state is shared between them, not per worker).
    for worker in 0..2 {
        let connections = gateway.stat(&format!(
            "listener.127.0.0.1_{}.worker_{worker}.downstream_cx_total",
            gateway.port
        ));
        assert!(
            connections > 100,
            "worker {worker} took {connections} connections"
        );
    }

    // 33/33/34: exact in every window of 100.
    let answers = versions(&gateway, "/thirds/items", 300)?;
    assert_windows_exact(&answers, &[("a", 33), ("b", 33), ("c", 34)]);
    assert_eq!(
        (
            upstreams.hits("third-a"),
            upstreams.hits("third-b"),
            upstreams.hits("third-c")
        ),
        (99, 99, 102)
    );

    // A weight edit, live: the new split from the next window.
    gateway.reconfigure((70, 30), &upstreams)?;
    let answers = versions(&gateway, "/pets/items", 300)?;
    assert_windows_exact(&answers, &[("v1", 70), ("v2", 30)]);

    // Sticky by principal: each of 200 clients always sees one version; about half each.
    let mut seen: BTreeMap<usize, String> = BTreeMap::new();
    for round in 0..3 {
        for principal in 0..PRINCIPALS {
            let key = api_key(principal);
            let response = gateway.get("/ab/items", &[("x-api-key", &key)])?;
            assert_eq!(response.status, 200, "{}\n{}", response.body, gateway.logs());
            let version = response
                .header("x-kea-backend-version")
                .unwrap_or("none")
                .to_string();
            let first = seen.entry(principal).or_insert_with(|| version.clone());
            assert_eq!(*first, version, "client-{principal:03} moved in round {round}");
        }
    }
    let on_a = seen.values().filter(|v| *v == "a").count();
    assert!((60..=140).contains(&on_a), "{on_a} of 200 clients on a (50/50)");
    // A client cannot pick its version.
    let chosen = gateway.get(
        "/ab/items",
        &[
            ("x-api-key", &api_key(0)),
            ("x-kea-backend", "b"),
            ("x-kea-backend", "a"),
        ],
    )?;
    assert_eq!(chosen.header("x-kea-backend-version"), Some(seen[&0].as_str()));

    // Mirroring 20%: the shadow receives exactly 200 of 1,000; the client only sees the live answers.
    let answers = versions(&gateway, "/shadowed/items", 1000)?;
    assert!(
        answers.iter().all(|v| v == "live"),
        "a shadow answer reached the client"
    );
    wait_for(
        Duration::from_secs(20),
        "the shadow to receive its copies",
        || (upstreams.hits("shadow") >= 200).then_some(()),
    )
    .with_context(|| format!("shadow {} of 1000", upstreams.hits("shadow")))?;
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(upstreams.hits("shadow"), 200, "{}", gateway.logs());
    assert_eq!(upstreams.hits("live"), 1000, "{}", gateway.logs());
    Ok(())
}
