//! End-to-end in a real cluster (`scripts/cluster.sh`: kubelet, containerd, kube-proxy, registry):
//! KEA installed from its images, a sample API in Pods behind a standalone gateway the operator
//! runs; requests from the host through the gateway's Pods with auth, validation, cache and audit
//! at work; weight edits and new APIs applied without a failed request; bad input reported as
//! conditions while the previous gateway keeps serving.

use anyhow::{bail, Context, Result};
use kea_e2e::cluster::{Cluster, Namespace};
use kea_e2e::http;
use serde_json::Value;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The API key of the tests' client (its SHA-256 is in the gateway's auth configuration).
const API_KEY: &str = "demo-api-key";
const API_KEY_SHA256: &str = "ca6f2e39b2ff141859b18bb5283aadd5093c8ede2869f3656231a054e54bfc22";
const GATEWAY: &str = "edge";

fn upstream(name: &str, image: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: api
          image: {image}
          args: ["8080", "--bind", "0.0.0.0"]
          ports: [{{containerPort: 8080, protocol: TCP}}]
          readinessProbe: {{httpGet: {{path: /_kea/stats, port: 8080}}, periodSeconds: 1}}
          resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80, targetPort: 8080, protocol: TCP}}]
"#
    )
}

/// Where the gateway serves the docs portal.
const DOCS_HOST: &str = "docs.kea.test";

fn binding(extra: &str) -> String {
    format!(
        r#"
apiVersion: kea.dev/v1alpha1
kind: GatewayBinding
metadata: {{name: {GATEWAY}}}
spec:
  standalone:
    replicas: 2
    concurrency: 1
    resources: {{requests: {{cpu: 50m, memory: 64Mi}}}}
{extra}
  docsHost: {DOCS_HOST}
  audit: {{enabled: true}}
  plugins:
    auth:
      config:
        apiKeys:
          - name: clients
            keys:
              - {{client: tester, sha256: {API_KEY_SHA256}, scopes: [pets]}}
    cache:
      config:
        store: {{maxEntries: 256, maxEntryBytes: 64KiB}}
"#
    )
}

fn pets_api(v1: u32, v2: u32) -> String {
    format!(
        r#"
apiVersion: kea.dev/v1alpha1
kind: ApiDefinition
metadata: {{name: pets}}
spec:
  gateway: {GATEWAY}
  hosts: ["*"]
  basePath: /pets
  backends:
    - {{service: pets-v1, port: 80, version: v1, weight: {v1}}}
    - {{service: pets-v2, port: 80, version: v2, weight: {v2}}}
  schema:
    operations:
      - path: /{{petId}}
        method: GET
        parameters:
          - {{name: petId, in: path, required: true, schema: {{type: integer, minimum: 1}}}}
      - path: /
        method: POST
        requestBody:
          required: true
          contentType: application/json
          schema:
            type: object
            required: [name]
            additionalProperties: false
            properties:
              name: {{type: string, minLength: 1}}
  validation: {{mode: enforce}}
  auth: {{providers: [clients]}}
  cache: {{enabled: true, defaultTtl: 30s}}
"#
    )
}

const ORDERS_API: &str = r#"
apiVersion: kea.dev/v1alpha1
kind: ApiDefinition
metadata: {name: orders}
spec:
  gateway: edge
  hosts: ["*"]
  basePath: /orders
  backends:
    - {service: pets-v1, port: 80}
  schema:
    operations:
      - path: "/{id}"
        method: GET
        parameters: [{name: id, in: path, required: true, schema: {type: string}}]
  validation: {mode: "off"}
  auth: {anonymous: true}
"#;

/// Waits until a condition has `status` (and `reason`, when given); returns its message.
async fn wait_condition(
    ns: &Namespace,
    resource: (&str, &str, &str),
    type_: &str,
    status: &str,
    reason: Option<&str>,
    timeout: Duration,
) -> Result<String> {
    ns.wait_condition(resource, type_, status, reason, timeout).await
}

const BINDING: (&str, &str, &str) = ("GatewayBinding", "gatewaybindings", GATEWAY);
const PETS: (&str, &str, &str) = ("ApiDefinition", "apidefinitions", "pets");

/// Requests that reached the sample API's Pods of `service` (read from each Pod directly).
async fn upstream_hits(ns: &Namespace, app: &str) -> Result<u64> {
    let mut total = 0;
    for pod in ns.pods(&format!("app={app}")).await? {
        let ip = pod
            .status
            .and_then(|status| status.pod_ip)
            .context("pod without IP")?;
        let stats = http::get(&format!("http://{ip}:8080/_kea/stats"))?;
        total += stats.json()["hits"].as_u64().context("no hits")?;
    }
    Ok(total)
}

/// Sends GETs to `url` in a loop until stopped; counts answers other than `expect` and transport
/// failures.
struct ClientLoop {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ClientLoop {
    fn start(url: String, headers: Vec<(String, String)>, expect: u16) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let thread = {
            let (stop, sent, failed, failures) =
                (stop.clone(), sent.clone(), failed.clone(), failures.clone());
            std::thread::spawn(move || {
                let agent = http::agent();
                // Bounded: at most 10 minutes of requests, whatever happens to the test.
                let deadline = Instant::now() + Duration::from_secs(600);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let mut request = agent.get(&url);
                    for (name, value) in &headers {
                        request = request.set(name, value);
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                    match http::Response::from_ureq(request.call()) {
                        Ok(response) if response.status == expect => {}
                        Ok(response) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut list) = failures.lock() {
                                list.push(format!("{} {}", response.status, response.body));
                            }
                        }
                        Err(error) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut list) = failures.lock() {
                                list.push(error.to_string());
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        Self {
            stop,
            sent,
            failed,
            failures,
            thread: Some(thread),
        }
    }

    /// Stops the loop: (sent, failed, the first failures).
    fn finish(mut self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let failures = self
            .failures
            .lock()
            .map(|l| l.iter().take(5).cloned().collect())
            .unwrap_or_default();
        (
            self.sent.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            failures,
        )
    }
}

fn keyed() -> Vec<(String, String)> {
    vec![("x-api-key".into(), API_KEY.into())]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standalone_gateway_serves_apis_from_pods_and_takes_changes_without_failing_a_request() -> Result<()>
{
    let cluster = Cluster::shared()?;
    let ns = cluster.namespace("kea-e2e").await?;
    let image = cluster.setting("KEA_IMAGE_UPSTREAM")?;
    ns.apply(&format!(
        "{}---{}",
        upstream("pets-v1", image),
        upstream("pets-v2", image)
    ))
    .await?;
    let started = Instant::now();
    ns.apply(&format!("{}---{}", binding(""), pets_api(100, 0)))
        .await?;
    for app in ["pets-v1", "pets-v2"] {
        ns.wait_deployment_ready(app, Duration::from_secs(120)).await?;
    }
    ns.wait_deployment_ready("kea-gateway-edge", Duration::from_secs(180))
        .await?;
    wait_condition(&ns, BINDING, "Ready", "True", None, Duration::from_secs(60)).await?;
    wait_condition(&ns, PETS, "Ready", "True", None, Duration::from_secs(60)).await?;
    eprintln!(
        "gateway ready {:.1} s after the resources were applied",
        started.elapsed().as_secs_f64()
    );
    let gateway = ns.service_address("kea-gateway-edge").await?;
    let url = |path: &str| format!("http://{gateway}{path}");

    // Auth fails closed: no key, no entry; a wrong key neither.
    let anonymous = http::get(&url("/pets/1"))?;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert!(
        anonymous.header("www-authenticate").is_some(),
        "{:?}",
        anonymous.headers
    );
    let wrong = http::send("GET", &url("/pets/1"), &[("x-api-key", "nope")], None)?;
    assert_eq!(wrong.status, 401);

    // A valid request reaches version 1 (weight 100) in its Pod.
    let hits_before = upstream_hits(&ns, "pets-v1").await?;
    // One connection, so one gateway Pod: each Pod has its own cache.
    let connection = http::agent();
    let ok = http::send_on(
        &connection,
        "GET",
        &url("/pets/7"),
        &[("x-api-key", API_KEY)],
        None,
    )?;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.header("x-kea-backend-version"), Some("v1"));
    assert_eq!(upstream_hits(&ns, "pets-v1").await?, hits_before + 1);

    // Cache: the same request again is answered by the gateway.
    let again = http::send_on(
        &connection,
        "GET",
        &url("/pets/7"),
        &[("x-api-key", API_KEY)],
        None,
    )?;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("x-kea-cache"), Some("HIT"), "{:?}", again.headers);
    assert_eq!(upstream_hits(&ns, "pets-v1").await?, hits_before + 1);

    // Validation: a wrong path parameter and a wrong body are refused before the upstream.
    let bad_id = http::send("GET", &url("/pets/zero"), &[("x-api-key", API_KEY)], None)?;
    assert_eq!(bad_id.status, 400, "{}", bad_id.body);
    assert_eq!(bad_id.header("content-type"), Some("application/problem+json"));
    let bad_body = http::send(
        "POST",
        &url("/pets/"),
        &[("x-api-key", API_KEY), ("content-type", "application/json")],
        Some(br#"{"name": "", "extra": 1}"#),
    )?;
    assert_eq!(bad_body.status, 400, "{}", bad_body.body);
    assert!(bad_body.body.contains("/name"), "{}", bad_body.body);
    assert_eq!(upstream_hits(&ns, "pets-v1").await?, hits_before + 1);

    // The docs portal through the gateway: the docs host's `/docs/` goes to the operator, open to
    // anyone (the APIs themselves take a key), the validator from the operator's image, gzipped.
    let docs = |path: &str, headers: &[(&str, &str)]| {
        let mut all = vec![("host", DOCS_HOST)];
        all.extend_from_slice(headers);
        http::send("GET", &url(path), &all, None)
    };
    let catalog = docs("/docs/catalog.json", &[])?;
    assert_eq!(catalog.status, 200, "{}", catalog.body);
    let listed = catalog.json();
    assert!(
        listed["gateway"].as_str().unwrap_or_default().ends_with("/edge"),
        "{listed:#}"
    );
    let pets = listed["entries"]
        .as_array()
        .and_then(|entries| entries.iter().find(|e| e["name"] == "pets"))
        .cloned();
    assert_eq!(
        pets.as_ref().map(|p| p["auth"]["credentials"].clone()),
        Some(serde_json::json!(["clients"])),
        "{listed:#}"
    );
    assert!(docs("/docs/", &[])?.body.contains("API portal"));
    let validator = docs(
        "/docs/assets/kea_validator_bg.wasm",
        &[("accept-encoding", "gzip")],
    )?;
    assert_eq!(validator.status, 200, "{:?}", validator.headers);
    assert_eq!(validator.header("content-encoding"), Some("gzip"));

    // Audit: the gateway's Pods log a record of the request, the key redacted.
    let mut audited = false;
    for pod in ns.pods("kea.dev/gateway=edge").await? {
        let name = pod.metadata.name.unwrap_or_default();
        let logs = ns.logs(&name, "envoy").await?;
        if logs.contains("/pets/7") {
            assert!(!logs.contains(API_KEY), "the API key is in the audit log");
            audited = true;
        }
    }
    assert!(audited, "no audit record of /pets/7 in the gateway's logs");

    // A weight edit 100/0 → 50/50 while a client sends requests: none fails.
    let client = ClientLoop::start(url("/pets/8"), keyed(), 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let v2_before = upstream_hits(&ns, "pets-v2").await?;
    ns.apply(&pets_api(50, 50)).await?;
    let applied = Instant::now();
    wait_condition(&ns, PETS, "PluginsReady", "True", None, Duration::from_secs(30)).await?;
    // The new split is served: version 2 gets requests (the cache holds /pets/8: use other ids).
    let mut seen_v2 = None;
    for id in 100..400 {
        let response = http::send(
            "GET",
            &url(&format!("/pets/{id}")),
            &[("x-api-key", API_KEY)],
            None,
        )?;
        assert_eq!(response.status, 200, "{:?} {}", response.headers, response.body);
        if response.header("x-kea-backend-version") == Some("v2") {
            seen_v2 = Some(applied.elapsed());
            let hits = upstream_hits(&ns, "pets-v2").await?;
            assert!(
                hits > v2_before,
                "version 2 answered /pets/{id} ({:?}) but its Pods count {hits} requests, {v2_before} before",
                response.headers
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen_v2 = seen_v2.context("version 2 never answered after the weight edit")?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (sent, failed, failures) = client.finish();
    eprintln!("weight edit: version 2 answered {:.2} s after the apply; {sent} requests during the change, {failed} failed", seen_v2.as_secs_f64());
    assert_eq!(failed, 0, "requests failed during the weight edit: {failures:?}");
    assert!(sent > 50, "the client loop sent only {sent} requests");

    // A new API is served within 5 s of being written, again without a failed request.
    let client = ClientLoop::start(url("/pets/9"), keyed(), 200);
    let written = Instant::now();
    ns.apply(ORDERS_API).await?;
    let served = loop {
        let response = http::get(&url("/orders/1"))?;
        if response.status == 200 {
            break written.elapsed();
        }
        if written.elapsed() > Duration::from_secs(30) {
            bail!(
                "/orders not served 30 s after the ApiDefinition was written: {} {}",
                response.status,
                response.body
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (sent, failed, failures) = client.finish();
    eprintln!(
        "new API served {:.2} s after it was written; {sent} requests during the change, {failed} failed",
        served.as_secs_f64()
    );
    assert_eq!(
        failed, 0,
        "requests failed while the new API was added: {failures:?}"
    );
    assert!(served < Duration::from_secs(5), "the new API took {served:?}");

    // Bad input: a plugin artifact whose module is not the pinned one is refused before any
    // gateway loads it; the previous configuration keeps serving.
    let client = ClientLoop::start(url("/pets/9"), keyed(), 200);
    let module = cluster.setting("KEA_PLUGIN_KEA")?;
    let wrong = "0".repeat(64);
    ns.apply(&binding("").replace(
        "    auth:\n      config:",
        &format!("    module:\n      url: {module}\n      sha256: \"{wrong}\"\n    auth:\n      config:"),
    ))
    .await?;
    let message = wait_condition(
        &ns,
        BINDING,
        "PluginsReady",
        "False",
        Some("PluginDigestMismatch"),
        Duration::from_secs(30),
    )
    .await?;
    assert!(message.contains(&wrong), "{message}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (sent, failed, failures) = client.finish();
    assert_eq!(
        failed, 0,
        "the gateway stopped serving on a bad plugin artifact: {failures:?} of {sent}"
    );
    ns.apply(&binding("")).await?;
    wait_condition(
        &ns,
        BINDING,
        "PluginsReady",
        "True",
        None,
        Duration::from_secs(30),
    )
    .await?;

    // Bad input: a gateway image that cannot be pulled is reported, the previous Pods serve on.
    let client = ClientLoop::start(url("/pets/9"), keyed(), 200);
    let registry = cluster.setting("KEA_REGISTRY")?;
    ns.apply(&binding(&format!(
        "    image: {registry}/kea/no-such-gateway:0.0.0"
    )))
    .await?;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let found = ns.condition(BINDING, "GatewayReady").await?;
        match &found {
            Some((status, reason, message))
                if status == "False" && (reason == "ErrImagePull" || reason == "ImagePullBackOff") =>
            {
                assert!(message.contains("no-such-gateway"), "{message}");
                break;
            }
            _ if Instant::now() >= deadline => {
                bail!("GatewayReady does not say the image cannot be pulled: {found:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    // Invalid resources are refused with the field; nothing is rewritten.
    ns.apply(
        &binding("    resources: {requests: {cpu: lots}}")
            .replace("    resources: {requests: {cpu: 50m, memory: 64Mi}}\n", ""),
    )
    .await?;
    let message = wait_condition(
        &ns,
        BINDING,
        "Accepted",
        "False",
        Some("InvalidResources"),
        Duration::from_secs(30),
    )
    .await?;
    assert!(
        message.contains("spec.standalone.resources.requests.cpu"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (sent, failed, failures) = client.finish();
    assert_eq!(
        failed, 0,
        "the previous gateway stopped serving during bad input: {failures:?} of {sent}"
    );
    // Back to a good spec: ready again.
    ns.apply(&binding("")).await?;
    wait_condition(&ns, BINDING, "Ready", "True", None, Duration::from_secs(120)).await?;
    Ok(())
}

/// The plugin artifacts `scripts/publish-plugins.sh` pushed can be pulled back from the registry,
/// and the module in each is byte for byte the one in `dist/` (its sha256 in `dist/SHA256SUMS`).
#[test]
fn published_plugin_artifacts_pull_back_as_the_built_modules() -> Result<()> {
    use sha2::Digest;
    let cluster = Cluster::shared()?;
    let sums = std::fs::read_to_string(kea_e2e::repo_root().join("dist/SHA256SUMS"))?;
    let mut checked = Vec::new();
    for line in sums.lines() {
        let (sha256, file) = line.split_once(char::is_whitespace).context("SHA256SUMS line")?;
        let plugin = file.trim().trim_start_matches('*').trim_end_matches(".wasm");
        let reference = cluster.setting(&format!("KEA_PLUGIN_{}", plugin.to_uppercase()))?;
        let (host, rest) = reference
            .strip_prefix("oci://")
            .and_then(|r| r.split_once('/'))
            .context("oci://HOST/REPO:TAG")?;
        let (repository, tag) = rest.rsplit_once(':').context("a tag")?;
        let manifest: Value = http::agent()
            .get(&format!("http://{host}/v2/{repository}/manifests/{tag}"))
            .set("Accept", "application/vnd.oci.image.manifest.v1+json")
            .call()?
            .into_json()?;
        let layers = manifest["layers"].as_array().context("layers")?;
        let modules: Vec<&Value> = layers
            .iter()
            .filter(|layer| layer["mediaType"] == "application/vnd.module.wasm.content.layer.v1+wasm")
            .collect();
        assert_eq!(modules.len(), 1, "{plugin}: {manifest}");
        let digest = modules[0]["digest"].as_str().context("digest")?;
        let mut blob = Vec::new();
        http::agent()
            .get(&format!("http://{host}/v2/{repository}/blobs/{digest}"))
            .call()?
            .into_reader()
            .read_to_end(&mut blob)?;
        let pulled: String = sha2::Sha256::digest(&blob)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            pulled, sha256,
            "{plugin}: the pulled module differs from dist/{plugin}.wasm"
        );
        assert_eq!(digest, format!("sha256:{sha256}"));
        checked.push(plugin.to_string());
    }
    checked.sort();
    assert_eq!(
        checked,
        ["audit", "auth", "cache", "kea", "validate"],
        "expected the four plugins and the combined module in dist/SHA256SUMS"
    );
    Ok(())
}
