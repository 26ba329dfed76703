//! Models end to end in the local cluster: real scikit-learn models trained here, served from a
//! file server and a real git server on the node; the operator builds each version's image with a
//! Job, deploys it, and publishes it through the standalone gateway with an OpenAPI document
//! generated from the signature. Requests through the gateway get the frameworks' own predictions;
//! wrong tensors are rejected at the gateway (the model's request counter does not move); 90/10
//! between versions is observed; a crash-looping version reports why while the last good spec
//! keeps serving; bad specs are conditions. Custom models without `spec.signature` have their
//! serving class read by the build Job: a documented class gives the published document its
//! tensors and descriptions (and the gateway enforces them), a class that declares nothing is
//! reported as `Documented=False` with its file and line, and served all the same.

use anyhow::{bail, ensure, Context, Result};
use kea_e2e::cluster::{Cluster, Namespace};
use kea_e2e::{http, repo_root};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const GATEWAY: &str = "edge";
const IRIS: (&str, &str, &str) = ("Model", "models", "iris");
const SCORER: (&str, &str, &str) = ("Model", "models", "scorer");
/// Custom models without a signature: the class of `documented.py` declares its tensors in
/// `predict`'s docstring; the one of `serving.py` declares nothing.
const SCORER_DOC: (&str, &str, &str) = ("Model", "models", "scorer-doc");
const SCORER_PLAIN: (&str, &str, &str) = ("Model", "models", "scorer-plain");
/// The first build pulls the runtime image into the builder and the built one into the node.
const FIRST_READY: Duration = Duration::from_secs(900);

/// A process killed (and waited for) on drop: the file and git servers.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free TCP port on `address`.
fn free_port(address: &str) -> Result<u16> {
    Ok(TcpListener::bind((address, 0))?.local_addr()?.port())
}

/// Waits until something accepts connections on `address:port`.
fn wait_listening(address: &str, port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect((address, port)).is_err() {
        ensure!(Instant::now() < deadline, "nothing listens on {address}:{port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn run(command: &mut Command) -> Result<String> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !output.status.success() {
        bail!("{command:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// The runtime's Python environment (scikit-learn, joblib), made by `scripts/runtime-test.sh`.
fn python() -> Result<std::path::PathBuf> {
    let venv = run(Command::new(repo_root().join("scripts/runtime-test.sh")).arg("--venv"))?;
    let venv = venv.lines().last().unwrap_or_default().to_string();
    Ok(Path::new(&venv).join("bin/python"))
}

/// A git repository holding the user's serving class, as a user would push it.
fn scorer_repository(root: &Path) -> Result<()> {
    let repo = root.join("scorer");
    std::fs::create_dir_all(repo.join("svc"))?;
    for file in ["serving.py", "documented.py", "weights.json"] {
        std::fs::copy(
            repo_root().join("tests/models/scorer").join(file),
            repo.join("svc").join(file),
        )?;
    }
    let git = |args: &[&str]| run(Command::new("git").arg("-C").arg(&repo).args(args));
    git(&["init", "-q", "-b", "main"])?;
    git(&["add", "."])?;
    git(&[
        "-c",
        "user.name=kea",
        "-c",
        "user.email=kea@example.com",
        "commit",
        "-q",
        "-m",
        "scorer",
    ])?;
    git(&["tag", "v1"])?;
    Ok(())
}

fn binding() -> String {
    format!(
        r#"
apiVersion: kea.dev/v1alpha1
kind: GatewayBinding
metadata: {{name: {GATEWAY}}}
spec:
  standalone:
    replicas: 1
    concurrency: 1
    resources: {{requests: {{cpu: 50m, memory: 64Mi}}}}
"#
    )
}

/// The iris Model: v1 and v2 from the file server, weights as given, plus `extra` versions.
fn iris(files: &str, v1: u32, v2: u32, extra: &str) -> String {
    format!(
        r#"
apiVersion: kea.dev/v1alpha1
kind: Model
metadata: {{name: iris}}
spec:
  framework: sklearn
  gateway: {GATEWAY}
  hosts: ["*"]
  signature:
    inputs: [{{name: measurements, datatype: FP32, shape: [-1, 4]}}]
    outputs: [{{name: predict, datatype: INT64, shape: [-1]}}]
  versions:
    - {{name: v1, storageUri: "{files}/iris-v1/model.joblib", weight: {v1}}}
    - {{name: v2, storageUri: "{files}/iris-v2/model.joblib", weight: {v2}}}
{extra}
  auth: {{anonymous: true}}
  validation: {{mode: enforce}}
"#
    )
}

fn scorer(git: &str) -> String {
    format!(
        r#"
apiVersion: kea.dev/v1alpha1
kind: Model
metadata: {{name: scorer}}
spec:
  framework: custom
  gateway: {GATEWAY}
  hosts: ["*"]
  signature:
    inputs: [{{name: x, datatype: FP64, shape: [-1, 3]}}]
    outputs: [{{name: score, datatype: FP64, shape: [-1]}}]
  versions:
    - name: v1
      git: {{url: "{git}/scorer", revision: v1, path: svc}}
      className: serving.Scorer
  auth: {{anonymous: true}}
"#
    )
}

/// A custom Model from the same repository without `spec.signature`: the operator reads the
/// tensors `class` declares.
fn unsigned_scorer(name: &str, git: &str, class: &str) -> String {
    format!(
        r#"
apiVersion: kea.dev/v1alpha1
kind: Model
metadata: {{name: {name}}}
spec:
  framework: custom
  gateway: {GATEWAY}
  hosts: ["*"]
  versions:
    - name: v1
      git: {{url: "{git}/scorer", revision: v1, path: svc}}
      className: {class}
  auth: {{anonymous: true}}
  validation: {{mode: enforce}}
"#
    )
}

fn infer_body(name: &str, datatype: &str, rows: &Value) -> Value {
    let count = rows.as_array().map_or(0, Vec::len);
    let width = rows[0].as_array().map_or(0, Vec::len);
    json!({"inputs": [{"name": name, "datatype": datatype, "shape": [count, width], "data": rows}]})
}

/// Inference requests the model's Pods have answered (MLServer's own Prometheus counter).
async fn model_requests(ns: &Namespace, model: &str) -> Result<f64> {
    let mut total = 0.0;
    for pod in ns.pods(&format!("kea.dev/model={model}")).await? {
        let Some(ip) = pod.status.and_then(|status| status.pod_ip) else {
            continue;
        };
        let metrics = http::get(&format!("http://{ip}:8082/metrics"))?;
        ensure!(metrics.status == 200, "metrics of {ip}: {}", metrics.status);
        total += metrics
            .body
            .lines()
            .filter(|line| line.starts_with("rest_server_requests_total{") && line.contains("infer"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    Ok(total)
}

/// Every wrong body gets 400 problem+json from the gateway, on the model's path and on its v1
/// path, and none reaches the model (its request counter does not move).
async fn refused_at_the_gateway(
    ns: &Namespace,
    model: &str,
    base: &str,
    wrong: &[(&str, Value)],
) -> Result<()> {
    let before = model_requests(ns, model).await?;
    for (what, body) in wrong {
        for path in [format!("{base}/infer"), format!("{base}/versions/v1/infer")] {
            let response = post(&path, body)?;
            assert_eq!(response.status, 400, "wrong {what} at {path}: {}", response.body);
            assert_eq!(
                response.header("content-type"),
                Some("application/problem+json"),
                "{what}"
            );
        }
    }
    assert_eq!(
        model_requests(ns, model).await?,
        before,
        "a wrong tensor reached {model}"
    );
    Ok(())
}

fn post(url: &str, body: &Value) -> Result<http::Response> {
    http::send(
        "POST",
        url,
        &[("content-type", "application/json")],
        Some(body.to_string().as_bytes()),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn models_are_built_deployed_split_validated_and_documented() -> Result<()> {
    let cluster = Cluster::shared()?;
    let node = cluster.setting("KEA_CLUSTER_NODE_IP")?.to_string();
    let work = tempfile::tempdir()?;

    // Real models, trained now; the frameworks' own predictions are the expected answers.
    let files_dir = work.path().join("files");
    run(Command::new(python()?)
        .arg(repo_root().join("tests/models/train.py"))
        .arg(&files_dir))?;
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(files_dir.join("expected.json"))?)?;
    let files_port = free_port(&node)?;
    let _files = Server(
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                &node,
                &files_port.to_string(),
                "--directory",
            ])
            .arg(&files_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    wait_listening(&node, files_port)?;
    let files = format!("http://{node}:{files_port}");
    let git_dir = work.path().join("git");
    scorer_repository(&git_dir)?;
    let git_port = free_port(&node)?;
    let _git = Server(
        Command::new("git")
            .args(["daemon", "--reuseaddr", "--export-all", "--informative-errors"])
            .arg(format!("--base-path={}", git_dir.display()))
            .arg(format!("--listen={node}"))
            .arg(format!("--port={git_port}"))
            .arg(&git_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    wait_listening(&node, git_port)?;
    let git = format!("git://{node}:{git_port}");

    let ns = cluster.namespace("kea-models").await?;
    let started = Instant::now();
    ns.apply(&format!(
        "{}---{}---{}---{}---{}",
        binding(),
        iris(&files, 90, 10, ""),
        scorer(&git),
        unsigned_scorer("scorer-doc", &git, "documented.Scorer"),
        unsigned_scorer("scorer-plain", &git, "serving.Scorer"),
    ))
    .await?;
    ns.wait_condition(IRIS, "Ready", "True", None, FIRST_READY)
        .await?;
    for model in [SCORER, SCORER_DOC, SCORER_PLAIN] {
        ns.wait_condition(model, "Ready", "True", None, Duration::from_secs(300))
            .await?;
    }
    eprintln!(
        "models ready {:.1} s after they were applied",
        started.elapsed().as_secs_f64()
    );
    let gateway = ns.service_address("kea-gateway-edge").await?;
    let url = |path: &str| format!("http://{gateway}{path}");

    // Each version runs an image a build Job made, pinned by digest in the local registry.
    let status: Value =
        serde_json::from_str(&cluster.kubectl(&["-n", &ns.name, "get", "model", "iris", "-o", "json"])?)?;
    let registry = cluster.setting("KEA_REGISTRY")?;
    for version in status["status"]["versions"]
        .as_array()
        .context("no version status")?
    {
        let image = version["image"].as_str().unwrap_or_default();
        assert!(
            image.starts_with(&format!("{registry}/kea/models/{}-iris@sha256:", ns.name)),
            "{version}"
        );
        assert_eq!(version["phase"], "Available", "{version}");
    }

    // Metadata through the gateway names the declared tensors. (`Ready` says the gateway's
    // configuration holds the model; its Envoys poll for it every second.)
    let deadline = Instant::now() + Duration::from_secs(30);
    let metadata = loop {
        let metadata = http::get(&url("/v2/models/iris"))?;
        if metadata.status != 404 || Instant::now() >= deadline {
            break metadata;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(metadata.status, 200, "metadata: {}", metadata.body);
    assert_eq!(
        metadata.json()["inputs"][0]["name"],
        "measurements",
        "{}",
        metadata.body
    );

    // Valid requests: the model's own predictions, split about 90/10 between the versions.
    let rows = &expected["rows"];
    let body = infer_body("measurements", "FP32", rows);
    let mut v2_answers = 0;
    let total = 200;
    for _ in 0..total {
        let response = post(&url("/v2/models/iris/infer"), &body)?;
        assert_eq!(response.status, 200, "{}", response.body);
        let answer = response.json();
        let version = answer["model_version"]
            .as_str()
            .context("no model_version")?
            .to_string();
        assert_eq!(
            answer["outputs"][0]["data"], expected[&version],
            "{version}: {}",
            response.body
        );
        v2_answers += usize::from(version == "v2");
    }
    eprintln!("v2 answered {v2_answers} of {total} (weight 10%)");
    assert!(
        (5..=40).contains(&v2_answers),
        "v2 answered {v2_answers} of {total} requests at weight 10"
    );
    // The versioned path always reaches its version.
    for version in ["v1", "v2"] {
        let response = post(&url(&format!("/v2/models/iris/versions/{version}/infer")), &body)?;
        assert_eq!(response.status, 200, "{}", response.body);
        assert_eq!(response.json()["model_version"], version);
        assert_eq!(response.json()["outputs"][0]["data"], expected[version]);
    }

    // Wrong tensors never reach the model: 400 problem+json from the gateway.
    let wrong = [
        ("name", infer_body("features", "FP32", rows)),
        ("datatype", infer_body("measurements", "BYTES", rows)),
        (
            "shape",
            json!({"inputs": [{"name": "measurements", "datatype": "FP32", "shape": [5, 3], "data": rows}]}),
        ),
        (
            "rank",
            json!({"inputs": [{"name": "measurements", "datatype": "FP32", "shape": [20], "data": rows}]}),
        ),
    ];
    refused_at_the_gateway(&ns, "iris", &url("/v2/models/iris"), &wrong).await?;
    // A version the model does not have is not routed anywhere.
    let missing = post(&url("/v2/models/iris/versions/v9/infer"), &body)?;
    assert!(
        missing.status == 404 || missing.status == 400,
        "{}: {}",
        missing.status,
        missing.body
    );

    // The user's class from git: its own arithmetic.
    let x = json!([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]]);
    let scored = post(&url("/v2/models/scorer/infer"), &infer_body("x", "FP64", &x))?;
    assert_eq!(scored.status, 200, "{}", scored.body);
    assert_eq!(
        scored.json()["outputs"][0]["data"],
        json!([4.5, 2.0]),
        "{}",
        scored.body
    );

    // The generated document, as the operator serves it (`status.openapiPath`).
    let path = status["status"]["openapiPath"]
        .as_str()
        .context("no openapiPath")?;
    let operator = cluster.kubectl(&[
        "-n",
        "kea-system",
        "get",
        "service",
        "kea-operator",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ])?;
    let served = http::get(&format!("http://{operator}:8080{path}"))?;
    assert_eq!(served.status, 200, "{path}: {}", served.body);
    let document = served.json();
    assert_eq!(document["servers"][0]["url"], "/v2/models/iris");
    let paths = document["paths"].as_object().context("no paths")?;
    for path in ["/", "/infer", "/versions/v1/infer", "/versions/v2/ready"] {
        assert!(paths.contains_key(path), "{path} missing from {:?}", paths.keys());
    }
    let request = &document["components"]["schemas"]["Input0"]["properties"];
    assert_eq!(request["name"]["enum"], json!(["measurements"]));
    assert_eq!(request["datatype"]["enum"], json!(["FP32"]));

    source_documented_models(cluster, &ns, &operator, &url).await?;

    // A version whose Pods cannot start: reported with the reason; v1/v2 keep serving as before.
    ns.apply(&iris(
        &files,
        90,
        0,
        &format!("    - {{name: v3, storageUri: \"{files}/missing/model.joblib\", weight: 10}}"),
    ))
    .await?;
    // Its image is built first; then its Pod's init container fails to fetch the files.
    let deadline = Instant::now() + Duration::from_secs(300);
    let message = loop {
        let (ready, _, _) = ns.condition(IRIS, "Ready").await?.unwrap_or_default();
        let (_, reason, message) = ns.condition(IRIS, "VersionsReady").await?.unwrap_or_default();
        if ready == "False" && reason != "Building" && reason != "Progressing" && message.contains("v3") {
            break format!("{reason}: {message}");
        }
        ensure!(
            Instant::now() < deadline,
            "v3 never reported its failure: Ready {ready}, {reason}: {message}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    eprintln!("v3: {message}");
    assert!(
        message.contains("404") || message.contains("CrashLoopBackOff") || message.contains("Init"),
        "{message}"
    );
    for _ in 0..20 {
        let response = post(&url("/v2/models/iris/infer"), &body)?;
        assert_eq!(
            response.status, 200,
            "the last good versions stopped serving: {}",
            response.body
        );
        assert_ne!(response.json()["model_version"], "v3");
    }
    // Removing it heals the model and removes its objects.
    ns.apply(&iris(&files, 100, 0, "")).await?;
    ns.wait_condition(IRIS, "Ready", "True", None, Duration::from_secs(180))
        .await?;
    // The Deployment goes at once; its Pods go through the garbage collector and the kubelet's
    // graceful termination, which on a loaded 2-core node (a CI run) took over a minute.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let pods = ns.pods("kea.dev/model=iris,kea.dev/model-version=v3").await?;
        let deployment = cluster.kubectl(&[
            "-n",
            &ns.name,
            "get",
            "deployment",
            "iris-v3",
            "--ignore-not-found",
        ])?;
        if pods.is_empty() && deployment.is_empty() {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "v3's objects are still there after 180 s: {} Pods, Deployment: {deployment:?}",
            pods.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for _ in 0..20 {
        let response = post(&url("/v2/models/iris/infer"), &body)?;
        assert_eq!(response.json()["model_version"], "v1", "{}", response.body);
    }

    // Bad specs are conditions; what is served stays.
    ns.apply(&iris(&files, 80, 10, "")).await?;
    let message = ns
        .wait_condition(
            IRIS,
            "Accepted",
            "False",
            Some("WeightsDoNotSumTo100"),
            Duration::from_secs(60),
        )
        .await?;
    assert!(message.contains("v1=80, v2=10 sum to 90"), "{message}");
    assert_eq!(post(&url("/v2/models/iris/infer"), &body)?.status, 200);
    // What the CRD schema refuses, the API server refuses, naming the field.
    let refused = match ns
        .apply(&iris(&files, 100, 0, "").replace("framework: sklearn", "framework: caffe"))
        .await
    {
        Ok(_) => bail!("an unknown framework was accepted"),
        Err(error) => error,
    };
    assert!(format!("{refused:#}").contains("spec.framework"), "{refused:#}");
    Ok(())
}

/// Custom models without `spec.signature`: their build Job read the serving class. The documented
/// one is published with the tensors and descriptions of `predict`'s docstring, which the gateway
/// enforces; the one that declares nothing says where and why, and is served with the generic
/// document.
async fn source_documented_models(
    cluster: &Cluster,
    ns: &Namespace,
    operator: &str,
    url: &dyn Fn(&str) -> String,
) -> Result<()> {
    let message = ns
        .wait_condition(
            SCORER,
            "Documented",
            "True",
            Some("FromResource"),
            Duration::from_secs(10),
        )
        .await?;
    eprintln!("scorer: Documented FromResource: {message}");
    let message = ns
        .wait_condition(
            SCORER_DOC,
            "Documented",
            "True",
            Some("FromSource"),
            Duration::from_secs(10),
        )
        .await?;
    eprintln!("scorer-doc: Documented FromSource: {message}");
    assert_eq!(message, "read from documented.py:11, MLRun class Scorer");
    let status: Value = serde_json::from_str(&cluster.kubectl(&[
        "-n",
        &ns.name,
        "get",
        "model",
        "scorer-doc",
        "-o",
        "json",
    ])?)?;
    let version = &status["status"]["versions"][0];
    assert_eq!(
        version["signatureSource"], "documented.py:11, MLRun class Scorer",
        "{version}"
    );
    assert_eq!(
        version["signature"]["inputs"][0],
        json!({"name": "x", "datatype": "FP64", "shape": [-1, 3]}),
        "{version}"
    );
    assert_eq!(
        version["descriptions"]["inputs"]["x"], "three features per row.",
        "{version}"
    );

    // The served documents: the weighted one and the version's pinned one.
    for api in ["model-scorer-doc", "model-scorer-doc-v1"] {
        let path = format!("/docs/{}/{api}/openapi.json", ns.name);
        let served = http::get(&format!("http://{operator}:8080{path}"))?;
        assert_eq!(served.status, 200, "{path}: {}", served.body);
        let document = served.json();
        let schemas = &document["components"]["schemas"];
        assert_eq!(
            schemas["Input0"]["properties"]["name"]["enum"],
            json!(["x"]),
            "{path}"
        );
        assert_eq!(
            schemas["Input0"]["properties"]["datatype"]["enum"],
            json!(["FP64"]),
            "{path}"
        );
        assert_eq!(
            schemas["Output0"]["properties"]["name"]["enum"],
            json!(["score"]),
            "{path}"
        );
        let input = schemas["Input0"]["description"].as_str().unwrap_or_default();
        assert!(input.ends_with("three features per row."), "{path}: {input}");
        assert_eq!(
            document["paths"]["/infer"]["post"]["description"],
            "Scores each row: the weighted sum of its features.",
            "{path}"
        );
        let info = document["info"]["description"].as_str().unwrap_or_default();
        assert!(
            info.starts_with("Scores rows of three features with fixed weights."),
            "{path}: {info}"
        );
    }

    // Through the gateway: the class's own arithmetic; a wrong tensor never reaches it.
    let x = json!([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let scored = loop {
        let scored = post(&url("/v2/models/scorer-doc/infer"), &infer_body("x", "FP64", &x))?;
        if scored.status != 404 || Instant::now() >= deadline {
            break scored;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(scored.status, 200, "{}", scored.body);
    assert_eq!(scored.json()["outputs"][0]["name"], "score", "{}", scored.body);
    assert_eq!(
        scored.json()["outputs"][0]["data"],
        json!([4.5, 2.0]),
        "{}",
        scored.body
    );
    let wrong = [
        ("name", infer_body("features", "FP64", &x)),
        ("datatype", infer_body("x", "INT64", &json!([[1, 2, 3]]))),
        ("shape", infer_body("x", "FP64", &json!([[1.0, 2.0]]))),
    ];
    refused_at_the_gateway(ns, "scorer-doc", &url("/v2/models/scorer-doc"), &wrong).await?;

    // A class that declares nothing: where and why, and the model is served all the same.
    let message = ns
        .wait_condition(
            SCORER_PLAIN,
            "Documented",
            "False",
            Some("NoTensorsDeclared"),
            Duration::from_secs(10),
        )
        .await?;
    eprintln!("scorer-plain: Documented NoTensorsDeclared: {message}");
    assert!(
        message.starts_with("serving.py:20: Scorer.predict(self, body) takes the whole request body"),
        "{message}"
    );
    let (ready, reason, _) = ns.condition(SCORER_PLAIN, "Ready").await?.unwrap_or_default();
    assert_eq!((ready.as_str(), reason.as_str()), ("True", "Ready"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let scored = loop {
        let scored = post(
            &url("/v2/models/scorer-plain/infer"),
            &infer_body("x", "FP64", &x),
        )?;
        if scored.status != 404 || Instant::now() >= deadline {
            break scored;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(scored.status, 200, "{}", scored.body);
    assert_eq!(
        scored.json()["outputs"][0]["data"],
        json!([4.5, 2.0]),
        "{}",
        scored.body
    );
    let path = format!("/docs/{}/model-scorer-plain/openapi.json", ns.name);
    let served = http::get(&format!("http://{operator}:8080{path}"))?;
    assert_eq!(served.status, 200, "{path}: {}", served.body);
    let document = served.json();
    assert!(
        document["components"]["schemas"].get("Input0").is_none(),
        "{path}: {document}"
    );
    let info = document["info"]["description"].as_str().unwrap_or_default();
    assert!(info.contains("`Documented` condition says why"), "{info}");
    Ok(())
}
