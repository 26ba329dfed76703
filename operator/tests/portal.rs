//! The docs portal in headless Chromium (Playwright, `tests/oidc/portal.mjs`):
//! - written by `kea render --portal` and served by real Envoy with the built plugins: the index,
//!   try-it whose in-browser problems (the validate plugin compiled with wasm-bindgen) equal the
//!   gateway's problem+json for the same request sent for real, a model's tensors, hostile
//!   descriptions that must not run, a document with thousands of operations;
//! - served live by the operator against a real API server: an ApiDefinition created or edited
//!   while the page is open appears in it within seconds.
//!
//! Screenshots go to `$KEA_ARTIFACTS/portal` (default `~/.cache/kea/artifacts/portal`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;

use anyhow::{bail, Context, Result};
use kea_e2e::envoy::EnvoyProcess;
use kea_e2e::http;
use kea_e2e::oidc::node_script;
use kea_e2e::upstream::Upstream;
use kea_e2e::{free_port, plugin_wasm};
use kea_operator::offline::{self, RenderArgs};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn artifacts() -> PathBuf {
    let base = std::env::var_os("KEA_ARTIFACTS").map_or_else(
        || PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/kea/artifacts"),
        PathBuf::from,
    );
    let dir = base.join("portal");
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn chromium() -> Result<String> {
    let chromium = std::env::var("KEA_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    anyhow::ensure!(
        Path::new(&chromium).exists(),
        "Chromium not found at {chromium} — run scripts/install-deps.sh"
    );
    Ok(chromium)
}

/// The in-browser validator built by `scripts/web-build.sh`.
fn web_dir() -> Result<PathBuf> {
    let dist = plugin_wasm("kea")?.parent().context("dist")?.to_path_buf();
    let web = dist.join("web");
    if !web.join("kea_validator_bg.wasm").exists() {
        bail!(
            "{} has no kea_validator_bg.wasm — run scripts/web-build.sh",
            web.display()
        );
    }
    Ok(web)
}

/// Runs the browser on a plan; the observations it printed.
fn browse(plan: &Value) -> Result<Value> {
    let (_dir, script) = node_script("portal.mjs")?;
    let output = Command::new("node")
        .arg(&script)
        .arg(plan.to_string())
        .env("KEA_CHROMIUM", chromium()?)
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .map_err(|e| anyhow::anyhow!("{e}: {stdout}\n{}", String::from_utf8_lossy(&output.stderr)))?;
    if !output.status.success() || seen.get("error").is_some() {
        bail!("the browser failed: {seen:#}");
    }
    Ok(seen)
}

const PETS: &str = r##"
openapi: 3.0.3
info: {title: Pets, version: "2.1.0", description: "Pets of the shop."}
paths:
  /:
    post:
      operationId: createPet
      summary: Adds a pet
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Pet"}
      responses:
        "200": {description: created}
  /{petId}:
    get:
      operationId: getPet
      parameters:
        - {name: petId, in: path, required: true, schema: {type: integer, minimum: 1}}
        - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 100}}
      responses:
        "200": {description: ok}
components:
  schemas:
    Pet:
      type: object
      additionalProperties: false
      required: [name, kind]
      properties:
        name: {type: string, minLength: 1, example: Rex}
        kind: {type: string, enum: [dog, cat]}
        age: {type: integer, minimum: 0}
        tags: {type: array, maxItems: 3, items: {type: string}}
"##;

/// Descriptions written by someone hostile: every one must show as text.
const HOSTILE: &str = r#"<script>alert("title")</script><img src=x onerror=alert(1)>"#;

fn resources(big_operations: usize) -> String {
    let mut paths = String::new();
    for index in 0..big_operations {
        let _ = write!(
            paths,
            "\n        - {{path: \"/items{index}/{{id}}\", method: GET, summary: item {index}, parameters: [{{name: id, in: path, schema: {{type: integer}}}}]}}"
        );
    }
    let hostile = serde_json::to_string(HOSTILE).unwrap();
    format!(
        r#"
apiVersion: kea.dev/v1alpha1
kind: GatewayBinding
metadata: {{name: edge, namespace: shop}}
spec:
  selector: {{istio: ingressgateway}}
  docsHost: localhost
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: pets-openapi, namespace: shop}}
data:
  openapi.yaml: {pets}
---
apiVersion: kea.dev/v1alpha1
kind: ApiDefinition
metadata: {{name: pets, namespace: shop}}
spec:
  gateway: edge
  hosts: ["*"]
  basePath: /pets
  auth: {{anonymous: true}}
  backends: [{{service: pets, port: 8080}}]
  schema: {{configMapRef: {{name: pets-openapi}}}}
---
apiVersion: kea.dev/v1alpha1
kind: ApiDefinition
metadata: {{name: hostile, namespace: shop}}
spec:
  gateway: edge
  hosts: ["*"]
  basePath: /hostile
  auth: {{anonymous: true}}
  backends: [{{service: pets, port: 8080}}]
  schema:
    openapi:
      openapi: 3.0.3
      info: {{title: {hostile}, version: {hostile}, description: {hostile}}}
      paths:
        /x:
          get:
            summary: {hostile}
            description: {hostile}
            parameters: [{{name: q, in: query, description: {hostile}, schema: {{type: string, example: {hostile}}}}}]
            responses: {{"200": {{description: {hostile}}}}}
---
apiVersion: kea.dev/v1alpha1
kind: ApiDefinition
metadata: {{name: big, namespace: shop}}
spec:
  gateway: edge
  hosts: ["*"]
  basePath: /big
  auth: {{anonymous: true}}
  backends: [{{service: pets, port: 8080}}]
  schema:
    operations:{paths}
---
apiVersion: kea.dev/v1alpha1
kind: Model
metadata: {{name: iris, namespace: shop}}
spec:
  framework: sklearn
  gateway: edge
  hosts: ["*"]
  auth: {{anonymous: true}}
  signature:
    inputs: [{{name: measurements, datatype: FP32, shape: [-1, 4]}}]
    outputs: [{{name: species, datatype: INT64, shape: [-1]}}]
  versions:
    - {{name: v1, storageUri: "https://models.example.com/iris.joblib"}}
"#,
        pets = serde_json::to_string(PETS).unwrap(),
    )
}

/// Envoy running the rendered gateway and portal; stopped when dropped.
struct Gateway {
    _envoy: EnvoyProcess,
    port: u16,
    _dir: tempfile::TempDir,
}

fn start_gateway(upstream: &Upstream, big_operations: usize) -> Result<Gateway> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("resources.yaml");
    fs::write(&file, resources(big_operations))?;
    let output = dir.path().join("envoy.yaml");
    let (port, admin) = (free_port()?, free_port()?);
    let mut args = RenderArgs::new(vec![file]);
    args.output = Some(output.clone());
    args.listen = format!("127.0.0.1:{port}").parse()?;
    args.admin = format!("127.0.0.1:{admin}").parse()?;
    args.plugins_dir = plugin_wasm("kea")?.parent().context("dist")?.to_path_buf();
    args.services = vec![
        format!("pets=127.0.0.1:{}", upstream.port)
            .parse()
            .map_err(anyhow::Error::msg)?,
        format!("iris-v1=127.0.0.1:{}", upstream.port)
            .parse()
            .map_err(anyhow::Error::msg)?,
    ];
    args.portal = Some(dir.path().join("portal"));
    args.web_dir = web_dir()?;
    offline::run(&args)?;
    let envoy = EnvoyProcess::start(&output, admin, &dir.path().join("envoy.log"))?;
    Ok(Gateway {
        _envoy: envoy,
        port,
        _dir: dir,
    })
}

#[test]
fn the_rendered_portal_lists_documents_and_checks_try_it_like_the_gateway() -> Result<()> {
    let upstream = Upstream::start()?;
    let big = 2000;
    let gateway = start_gateway(&upstream, big)?;
    let origin = format!("http://localhost:{}", gateway.port);

    // The portal's files carry its security headers; other hosts do not get the portal.
    let page = http::get(&format!("{origin}/docs/"))?;
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-security-policy")
        .is_some_and(|csp| csp.contains("script-src 'self'")));
    let yaml = http::get(&format!("{origin}/docs/shop/pets/openapi.yaml"))?;
    assert_eq!(yaml.header("content-type"), Some("application/yaml"));
    assert!(yaml.body.contains("operationId: createPet"), "{}", yaml.body);
    check_compressed_validator(&format!("{origin}/docs/assets/kea_validator_bg.wasm"))?;
    let elsewhere = http::send(
        "GET",
        &format!("http://127.0.0.1:{}/docs/", gateway.port),
        &[("host", "api.test")],
        None,
    )?;
    assert_ne!(elsewhere.body, page.body, "the portal is only on the docs host");

    let plan = json!({
        "origin": origin,
        "screenshots": artifacts(),
        "tryIt": [{
            "entry": "shop/pets", "method": "POST", "path": "/",
            // `null`: the body the page generates from the schema.
            "bodies": [
                ["invalid", r#"{"name": "", "kind": "bird", "age": -1, "extra": true}"#],
                ["valid", null],
                ["broken", "{\"name\": "],
            ],
        }],
        "model": "shop/iris",
        "visit": "shop/hostile",
        "brokenBundle": "shop/pets",
    });
    let seen = browse(&plan)?;

    // The index: every API and the model, with what a caller needs to know.
    let index = seen["index"].as_array().unwrap();
    let row = |title: &str| {
        index
            .iter()
            .find(|row| row["title"] == title)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(
        index.len(),
        4,
        "pets, hostile, big and the model (not its pinned version): {index:#?}"
    );
    assert_eq!(row("Pets")["basePath"], "/pets");
    assert_eq!(row("Pets")["operations"], 2);
    assert_eq!(row("Pets")["auth"], "open (credentials optional)");
    assert_eq!(row("shop/big")["operations"], big);
    assert_eq!(row("iris (sklearn model)")["kind"], "model");
    assert_eq!(row("iris (sklearn model)")["versions"], "v1 100%");
    assert_eq!(
        row(HOSTILE)["basePath"],
        "/hostile",
        "the hostile title shows as text"
    );

    // Try-it: what the browser predicts is what the gateway answers, byte for byte.
    let try_it = &seen["tryIt"][0];
    let invalid = &try_it["invalid"];
    assert_eq!(invalid["browser"]["verdict"], "failed", "{invalid:#}");
    assert_eq!(invalid["gateway"]["status"], 400, "{invalid:#}");
    assert_eq!(
        invalid["browser"]["problem"], invalid["gateway"]["body"],
        "{invalid:#}"
    );
    let errors = invalid["gateway"]["body"]["errors"].as_array().unwrap();
    assert!(errors.len() >= 3, "{invalid:#}");
    let broken = &try_it["broken"];
    assert_eq!(broken["gateway"]["status"], 400, "{broken:#}");
    assert_eq!(
        broken["browser"]["problem"], broken["gateway"]["body"],
        "{broken:#}"
    );
    // The generated example passes in the browser and at the gateway, and reaches the API.
    let valid = &try_it["valid"];
    assert_eq!(valid["browser"]["verdict"], "passed", "{valid:#}");
    assert_eq!(valid["gateway"]["status"], 200, "{valid:#}");
    assert!(upstream.hits() >= 1);

    // The model's tensors as tables.
    let model = seen["model"].as_array().unwrap();
    assert_eq!(model[0]["title"], "Inputs");
    assert_eq!(model[0]["rows"][0][0], "measurements");
    assert_eq!(model[0]["rows"][0][1], "FP32");
    assert_eq!(model[0]["rows"][0][2], "[-1, 4]");
    assert_eq!(model[1]["rows"][0][0], "species");

    // Hostile strings are text: nothing ran, nothing broke the page.
    assert_eq!(seen["dialogs"], 0, "{seen:#}");
    assert!(
        seen["visit"]["text"]
            .as_str()
            .unwrap()
            .contains("<script>alert(\"title\")</script>"),
        "{seen:#}"
    );
    // A bundle the browser cannot load says so; the page still works.
    let broken = seen["brokenBundle"].as_str().unwrap_or_default();
    assert!(broken.contains("bundle did not load in the browser"), "{seen:#}");
    assert_eq!(seen["pageErrors"].as_array().map(Vec::len), Some(0), "{seen:#}");
    Ok(())
}

/// The validator goes out gzip-compressed (under 1 MB) to browsers that take gzip, as it is to
/// others.
fn check_compressed_validator(url: &str) -> Result<()> {
    let length = |response: &http::Response| {
        response
            .header("content-length")
            .and_then(|length| length.parse::<usize>().ok())
            .unwrap_or_default()
    };
    let compressed = http::send("GET", url, &[("accept-encoding", "gzip, deflate, br")], None)?;
    assert_eq!(compressed.status, 200);
    assert_eq!(compressed.header("content-encoding"), Some("gzip"));
    assert_eq!(compressed.header("content-type"), Some("application/wasm"));
    assert!(
        length(&compressed) > 100_000 && length(&compressed) < 1_000_000,
        "{:?}",
        compressed.headers
    );
    let plain = http::send("GET", url, &[("accept-encoding", "gzip;q=0, identity")], None)?;
    assert_eq!(plain.header("content-encoding"), None);
    assert!(length(&plain) > length(&compressed), "{:?}", plain.headers);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Served live by the operator.

const DOCS_HOST: &str = "docs.kea.test";

fn live_binding(access: &str) -> Value {
    json!({
        "apiVersion": "kea.dev/v1alpha1", "kind": "GatewayBinding",
        "metadata": {"name": "edge", "namespace": NAMESPACE},
        "spec": {
            "selector": {"istio": "ingressgateway"},
            "routing": {"virtualService": {"gateways": ["istio-system/ingressgateway"]}},
            "docsHost": DOCS_HOST,
            "docsAccess": access,
            "identityProviders": [{"name": "corp", "issuer": "https://idp.example.com", "cluster": "outbound|443||idp.example.com",
                                   "jwksUri": "https://idp.example.com/keys"}],
        },
    })
}

fn api(name: &str, title: &str) -> Value {
    json!({
        "apiVersion": "kea.dev/v1alpha1", "kind": "ApiDefinition",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "gateway": "edge",
            "hosts": ["*"],
            "basePath": format!("/{name}"),
            "backends": [{"service": name, "port": 8080, "version": "v1", "weight": 70},
                         {"service": format!("{name}-next"), "port": 8080, "version": "v2", "weight": 30}],
            "auth": {"anonymous": true},
            "schema": {"openapi": {"openapi": "3.0.3", "info": {"title": title, "version": "1"},
                "paths": {"/{id}": {"get": {"parameters": [{"name": "id", "in": "path", "required": true,
                    "schema": {"type": "integer"}}], "responses": {"200": {"description": "ok"}}}}}}},
        },
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_portal_follows_the_cluster() -> Result<()> {
    let (plane, client) = cluster().await?;
    let mut operator = Operator::start(&plane, "portal-1")?;
    apply(&client, &live_binding("Public")).await?;
    for name in ["pets", "pets-next", "orders", "orders-next"] {
        apply(&client, &service(name, 8080)).await?;
    }
    apply(&client, &api("pets", "Pets")).await?;
    wait_ready(&client, "ApiDefinition", "pets", Duration::from_secs(30)).await?;
    wait_ready(&client, "GatewayBinding", "edge", Duration::from_secs(30)).await?;
    // The routes, the WasmPlugins and the docs VirtualService pass the real CRDs' rules.
    assert!(assert_written_objects_conform(&client, NAMESPACE).await >= 3);

    // The catalog of the gateway whose docs host the request names, with the resource's status.
    let catalog = |host: &str| {
        let response = http::send(
            "GET",
            &operator.url("/docs/catalog.json"),
            &[("host", host)],
            None,
        )?;
        anyhow::ensure!(response.status == 200, "{}", response.body);
        Ok::<Value, anyhow::Error>(response.json())
    };
    // (The page reads the operator's own watch, a moment behind the API server.)
    let listed = eventually(Duration::from_secs(10), "pets Ready in the catalog", || async {
        let listed = catalog(DOCS_HOST)?;
        Ok((listed["entries"][0]["ready"]["status"] == "True").then_some(listed))
    })
    .await?;
    assert_eq!(listed["gateway"], format!("{NAMESPACE}/edge"));
    let pets = &listed["entries"][0];
    assert_eq!(pets["title"], "Pets");
    assert_eq!(
        pets["versions"],
        json!([{"name": "v1", "weight": 70}, {"name": "v2", "weight": 30}])
    );
    // The validator's configuration is the plugin's own, with the bundle the gateway fetches.
    let config = http::get(&operator.url(&format!("/docs/{NAMESPACE}/pets/validator.json")))?.json();
    let bundle = http::get(&operator.url(&format!("/bundles/{NAMESPACE}/pets")))?.json();
    assert_eq!(config["apis"][0]["bundle"], bundle);

    check_compressed_validator(&operator.url("/docs/assets/kea_validator_bg.wasm"))?;

    // Open the page; create and edit APIs while it is open.
    let port = operator.port;
    let plan = json!({
        "origin": format!("http://{DOCS_HOST}:{port}"),
        "hostRules": format!("MAP {DOCS_HOST} 127.0.0.1"),
        "screenshots": artifacts(),
        "waitFor": {"title": "Orders", "timeoutMs": 30000},
    });
    let (_dir, script) = node_script("portal.mjs")?;
    let mut child = Command::new("node")
        .arg(&script)
        .arg(plan.to_string())
        .env("KEA_CHROMIUM", chromium()?)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let first = lines.next().context("the browser printed nothing")??;
    assert!(first.contains("\"open\""), "{first}");
    let created = Instant::now();
    apply(&client, &api("orders", "Orders")).await?;
    let last = lines.last().context("no observations")??;
    let status = child.wait()?;
    let seen: Value = serde_json::from_str(&last)?;
    assert!(status.success() && seen.get("error").is_none(), "{seen:#}");
    let appeared = created.elapsed();
    eprintln!("the new API appeared in the open page {appeared:?} after it was created");
    assert!(
        appeared < Duration::from_secs(5),
        "the new API showed after {appeared:?}: {seen:#}"
    );
    assert!(seen["index"]
        .as_array()
        .unwrap()
        .iter()
        .any(|row| row["title"] == "Pets"));

    // An edit shows too (the catalog the page polls changes with the resource).
    apply(&client, &api("pets", "Pets, renamed")).await?;
    eventually(
        Duration::from_secs(10),
        "the edited title in the catalog",
        || async {
            let listed = catalog(DOCS_HOST)?;
            Ok(listed["entries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|entry| entry["title"] == "Pets, renamed")
                .then_some(()))
        },
    )
    .await?;

    // A host no binding names gets every gateway's APIs.
    assert_eq!(catalog("elsewhere.test")?["gateway"], "*");

    // Login-only docs: the auth plugin's first rule covers the portal and takes only a session
    // of the gateway's single sign-on; without single sign-on configured the binding is refused.
    apply(&client, &live_binding("Login")).await?;
    eventually(Duration::from_secs(20), "the binding refused", || async {
        let Some(binding) = get(&client, "kea.dev/v1alpha1", "GatewayBinding", NAMESPACE, "edge").await?
        else {
            return Ok(None);
        };
        Ok(condition(&binding, "Ready")
            .filter(|(status, _, message)| {
                status == "False" && message.contains("docsAccess Login needs single sign-on")
            })
            .map(|_| ()))
    })
    .await?;

    // With single sign-on, the portal's rule comes first and takes only a session.
    let mut with_sso = live_binding("Login");
    with_sso["spec"]["plugins"] = json!({"auth": {"config": {"sso": {
        "name": "browser", "provider": "corp", "clientId": "kea-docs", "clientSecretEnv": "KEA_OIDC_CLIENT_SECRET",
        "endpoints": {"authorization": "https://idp.example.com/authorize", "token": "https://idp.example.com/token"},
        "sessionKeys": [{"id": "k1", "secretEnv": "KEA_SESSION_KEY"}],
    }}}});
    apply(&client, &with_sso).await?;
    let rule = eventually(Duration::from_secs(20), "the portal's auth rule", || async {
        let Some(auth) = plugin_section(&client, NAMESPACE, "edge", "auth").await? else {
            return Ok(None);
        };
        let first = auth.pointer("/rules/0").cloned().unwrap_or_default();
        Ok((first["anyOf"] == json!(["browser"])).then_some(first))
    })
    .await?;
    assert_eq!(
        rule["match"],
        json!({"hosts": [DOCS_HOST], "pathPrefix": "/docs/"}),
        "{rule:#}"
    );
    assert!(operator.running(), "{}", operator.logs());
    Ok(())
}
