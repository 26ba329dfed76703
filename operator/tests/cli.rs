//! The `kea` binary, run as a user would.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::process::Command;

fn kea(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kea"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn data(relative: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../schema/tests/data")
        .join(relative)
        .display()
        .to_string()
}

#[test]
fn check_and_bundle_documents() {
    let (ok, stdout, _) = kea(&["openapi", "check", &data("edge/api.yaml")]);
    assert!(ok);
    assert!(stdout.contains("ok — KEA edge cases 1: 8 operations"), "{stdout}");
    let (ok, stdout, _) = kea(&["openapi", "bundle", &data("openapi/petstore.yaml")]);
    assert!(ok);
    let bundle = kea_schema::Bundle::from_json(stdout.as_bytes()).unwrap();
    assert_eq!(bundle.title, "Swagger Petstore");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bundle.json");
    let (ok, _, stderr) = kea(&[
        "openapi",
        "bundle",
        &data("openapi/uspto.yaml"),
        "-o",
        &out.display().to_string(),
    ]);
    assert!(ok, "{stderr}");
    assert!(kea_schema::Bundle::from_json(&std::fs::read(out).unwrap()).is_ok());
}

#[test]
fn errors_name_the_file_and_pointer() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths:\n  /a/{id}:\n    get:\n      parameters: [{$ref: 'other.yaml#/p'}]\n      responses: {}\n",
    )
    .unwrap();
    let (ok, _, stderr) = kea(&["openapi", "check", &file.display().to_string()]);
    assert!(!ok);
    assert!(
        stderr.contains("other.yaml") && stderr.contains("cannot read"),
        "{stderr}"
    );
    std::fs::write(
        dir.path().join("other.yaml"),
        "p: {name: id, in: path, required: true, schema: {type: integer, minimum: true}}\n",
    )
    .unwrap();
    let (ok, _, stderr) = kea(&["openapi", "check", &file.display().to_string()]);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("other.yaml#/p/schema/minimum: minimum must be a number"),
        "{stderr}"
    );
}

#[test]
fn unchecked_keywords_are_warnings_and_other_versions_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("api.yaml");
    std::fs::write(
        &file,
        "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /pets:\n    post:\n      requestBody:\n        content:\n          \
         application/json: {schema: {type: object, properties: {name: {type: string, const: Rex}}}}\n      responses: {'204': {description: ok}}\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let warning = format!(
        "warning: {file}#/paths/~1pets/post/requestBody/content/application~1json/schema/properties/name/const: \
         keyword \"const\" is not part of OpenAPI 3.0 and is not checked\n"
    );
    let (ok, stdout, stderr) = kea(&["openapi", "check", &file]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(": ok — t 1: 1 operations"), "{stdout}");
    assert_eq!(stderr, warning);
    let (ok, stdout, stderr) = kea(&["openapi", "bundle", &file]);
    assert!(ok, "{stderr}");
    assert_eq!(stderr, warning);
    assert_eq!(
        kea_schema::Bundle::from_json(stdout.as_bytes())
            .unwrap()
            .warnings
            .len(),
        1
    );

    let swagger = dir.path().join("swagger.yaml");
    std::fs::write(
        &swagger,
        "swagger: '2.0'\ninfo: {title: t, version: '1'}\npaths: {}\n",
    )
    .unwrap();
    let (ok, _, stderr) = kea(&["openapi", "check", &swagger.display().to_string()]);
    assert!(!ok);
    assert_eq!(
        stderr,
        format!(
            "error: {}#/swagger: this is a Swagger/OpenAPI 2.0 document (swagger: \"2.0\"), which is not supported: \
             KEA reads OpenAPI 3.0.x documents; convert it to OpenAPI 3.0 first (e.g. with swagger2openapi)\n",
            swagger.display()
        )
    );
}

#[test]
fn committed_crds_match_the_code() {
    let (ok, stdout, stderr) = kea(&["crd"]);
    assert!(ok, "{stderr}");
    let committed =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests/crds.yaml"))
            .unwrap();
    assert!(
        stdout == committed,
        "manifests/crds.yaml is out of date: run `cargo run -p kea-operator --bin kea -- crd > manifests/crds.yaml`"
    );
    for needle in [
        "shortNames:\n    - kgw",
        "shortNames:\n    - kapi",
        "x-kubernetes-list-map-keys",
        "subresources:\n      status: {}",
    ] {
        assert!(committed.contains(needle), "{needle}");
    }
}

const SERVING: &str = r#""""Serving code of the iris model."""
import joblib
import numpy as np
from mlrun.serving import V2ModelServer


class Classifier(V2ModelServer):
    """Iris classifier: a decision tree on Fisher's iris data."""

    def load(self):
        self.model = joblib.load(self.model_path + "/model.joblib")

    def predict(self, body: dict) -> list:
        """Classifies iris flowers.

        Inputs:
            measurements (FP32[-1, 4]): sepal and petal lengths and widths, in cm.
        Outputs:
            species (INT64[-1]): the predicted class.
        """
        return self.model.predict(np.asarray(body["inputs"])).tolist()
"#;

const CUSTOM_MODEL: &str = "apiVersion: kea.dev/v1alpha1
kind: Model
metadata: {name: iris}
spec:
  framework: custom
  gateway: edge
  hosts: [models.example.com]
  versions:
    - {name: v1, git: {url: 'https://git.example.com/ml/iris', revision: v1}, className: serving.Classifier}
";

#[test]
fn model_signatures_from_serving_classes() {
    // A real MLRun serving class that declares no tensors: FILE:LINE: reason, exit 1.
    let real = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/serving-classes/mlrun_pkl_model_server.py");
    let real = real.display().to_string();
    let (ok, stdout, stderr) = kea(&["model", "signature", &real]);
    assert!(!ok);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.starts_with(&format!(
            "{real}:37: PickleModelServer.predict(self, request) takes the whole request body"
        )),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    std::fs::write(files.join("serving.py"), SERVING).unwrap();
    let serving = files.join("serving.py").display().to_string();
    let (ok, stdout, stderr) = kea(&["model", "signature", &serving, "--class", "Classifier"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("class Classifier (line 7, MLRun convention)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("# measurements: sepal and petal lengths and widths, in cm."),
        "{stdout}"
    );
    // Ready to paste into the resource.
    #[derive(serde::Deserialize)]
    struct Block {
        signature: kea_operator::crd::Signature,
    }
    let block: Block = serde_yaml_ng::from_str(&stdout).unwrap();
    assert_eq!(block.signature.inputs[0].name, "measurements");
    assert_eq!(block.signature.inputs[0].shape, [-1, 4]);
    assert_eq!(block.signature.outputs[0].name, "species");
    let (ok, _, stderr) = kea(&["model", "signature", &serving, "--class", "Missing"]);
    assert!(!ok);
    assert!(
        stderr.starts_with(&format!("{serving}:1: no class Missing")),
        "{stderr}"
    );

    // `kea model openapi --source DIR`: the class's signature and descriptions in the document.
    let model = dir.path().join("model.yaml");
    std::fs::write(&model, CUSTOM_MODEL).unwrap();
    let model = model.display().to_string();
    let files_dir = files.display().to_string();
    let (ok, stdout, stderr) = kea(&["model", "openapi", &model, "--source", &files_dir]);
    assert!(ok, "{stderr}");
    let document: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let schemas = &document["components"]["schemas"];
    assert_eq!(schemas["Input0"]["properties"]["name"]["enum"][0], "measurements");
    assert_eq!(schemas["Output0"]["properties"]["name"]["enum"][0], "species");
    assert_eq!(
        document["paths"]["/infer"]["post"]["description"],
        "Classifies iris flowers."
    );
    assert!(document["info"]["description"]
        .as_str()
        .unwrap()
        .starts_with("Iris classifier: a decision tree on Fisher's iris data."));
    // Without the source: the generic document, and a hint.
    let (ok, stdout, stderr) = kea(&["model", "openapi", &model]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("pass --source DIR"), "{stderr}");
    let document: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(document["components"]["schemas"].get("Input0").is_none());
    // A source that declares nothing fails with its line.
    std::fs::write(
        files.join("serving.py"),
        SERVING.replace("        Inputs:\n            measurements (FP32[-1, 4]): sepal and petal lengths and widths, in cm.\n", ""),
    )
    .unwrap();
    let (ok, _, stderr) = kea(&["model", "openapi", &model, "--source", &files_dir]);
    assert!(!ok);
    assert!(
        stderr.starts_with(&format!(
            "{}:13: Classifier.predict(self, body)",
            files.join("serving.py").display()
        )),
        "{stderr}"
    );
    std::fs::write(files.join("serving.py"), SERVING).unwrap();

    // `kea model package --files-dir DIR`: openapi.json from the class; the package itself is the
    // operator's (no signature in model-settings.json: the runtime then checks nothing itself).
    let out = dir.path().join("out");
    let (ok, _, stderr) = kea(&[
        "model",
        "package",
        &model,
        "-o",
        &out.display().to_string(),
        "--files-dir",
        &files_dir,
    ]);
    assert!(ok, "{stderr}");
    let document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("openapi.json")).unwrap()).unwrap();
    assert_eq!(
        document["components"]["schemas"]["Input0"]["properties"]["datatype"]["enum"][0],
        "FP32"
    );
    let settings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("v1/model-settings.json")).unwrap()).unwrap();
    assert!(settings.get("inputs").is_none(), "{settings}");
    assert_eq!(settings["parameters"]["extra"]["class"], "serving.Classifier");
}

/// `kea model signature --json`: what the operator's build Jobs run on the version's files — one
/// line of JSON on stdout and in the termination log, exit 0 whether the class declares its
/// tensors or not.
#[test]
fn model_signature_reports_for_build_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    std::fs::write(files.join("serving.py"), SERVING).unwrap();
    let log = dir.path().join("termination-log");
    let log_path = log.display().to_string();
    let files_dir = files.display().to_string();
    let report = |class: &str| {
        let (ok, stdout, stderr) = kea(&[
            "model",
            "signature",
            "--json",
            "--termination-log",
            &log_path,
            "--class",
            class,
            &files_dir,
        ]);
        assert!(ok, "{stderr}");
        let written = std::fs::read_to_string(&log).unwrap();
        assert_eq!(stdout.trim_end(), written);
        assert!(written.len() <= 4096 && !written.contains('\n'), "{written}");
        serde_json::from_str::<serde_json::Value>(&written).unwrap()
    };
    let read = report("serving.Classifier");
    assert_eq!(read["source"], "serving.py:7");
    assert_eq!(read["class"], "Classifier");
    assert_eq!(read["convention"], "MLRun");
    assert_eq!(
        read["signature"]["inputs"][0],
        serde_json::json!({"name": "measurements", "datatype": "FP32", "shape": [-1, 4]})
    );
    assert_eq!(
        read["descriptions"]["inputs"]["measurements"],
        "sepal and petal lengths and widths, in cm."
    );
    assert_eq!(read["descriptions"]["operation"], "Classifies iris flowers.");

    // A class that declares nothing: the problem, still exit 0.
    std::fs::write(
        files.join("serving.py"),
        SERVING.replace("        Inputs:\n            measurements (FP32[-1, 4]): sepal and petal lengths and widths, in cm.\n", ""),
    )
    .unwrap();
    let problem = report("serving.Classifier");
    assert_eq!(problem["problem"]["reason"], "NoTensorsDeclared", "{problem}");
    assert_eq!(problem["problem"]["file"], "serving.py");
    assert_eq!(problem["problem"]["line"], 13);
    assert!(problem["problem"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Classifier.predict(self, body)"));
    // No file for the module.
    let missing = report("scoring.Classifier");
    assert_eq!(missing["problem"]["reason"], "ClassNotFound");
    assert_eq!(
        missing["problem"]["message"],
        "className scoring.Classifier: the version's files hold none of scoring.py, scoring/__init__.py"
    );
    // The YAML form reads a directory too.
    std::fs::write(files.join("serving.py"), SERVING).unwrap();
    let (ok, stdout, stderr) = kea(&["model", "signature", "--class", "serving.Classifier", &files_dir]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("class Classifier (line 7, MLRun convention)"),
        "{stdout}"
    );
}

/// Issue 18: a document the size of Stripe's (500 operations over 500 schemas that refer to each
/// other) took a minute and gigabytes when every operation compiled its own copy of each schema.
/// Bounded loosely here (an unoptimised build on a busy CI machine); `bench/README.md` has the
/// optimised build's time and memory.
#[test]
fn a_document_of_500_operations_over_500_interlinked_schemas_bundles_in_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("interlinked.json");
    let document = kea_e2e::openapi::interlinked_document(500, 500);
    std::fs::write(&file, serde_json::to_vec(&document).unwrap()).unwrap();
    let out = dir.path().join("bundle.json");
    let started = std::time::Instant::now();
    let (ok, _, stderr) = kea(&[
        "openapi",
        "bundle",
        &file.display().to_string(),
        "-o",
        &out.display().to_string(),
    ]);
    let took = started.elapsed();
    assert!(ok, "{stderr}");
    assert!(took < std::time::Duration::from_secs(20), "took {took:?}");
    let bundle = kea_schema::Bundle::from_json(&std::fs::read(out).unwrap()).unwrap();
    assert_eq!(bundle.operations.len(), 500);
    // Each schema once per direction (request, response): shared, not copied per operation.
    assert_eq!(bundle.definitions.len(), 1000);
}

#[test]
fn render_kubernetes_writes_the_objects_the_operator_writes() {
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../envoy-examples/gateway");
    let output = Command::new(env!("CARGO_BIN_EXE_kea"))
        .arg("render")
        .arg(demo.join("gateway.yaml"))
        .arg(demo.join("apis.yaml"))
        .args([
            "--kubernetes",
            "--plugin-url",
            "oci://registry.example/kea/{plugin}:0.1.0",
        ])
        // The demo's single sign-on names these secrets (the auth plugin's compiler reads them).
        .env("KEA_OIDC_CLIENT_SECRET", "kea-web-secret-kea-web-secret-kea-web")
        .env(
            "KEA_SESSION_KEY",
            "demo-session-key-replace-with-openssl-rand-base64-32",
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let text = String::from_utf8_lossy(&output.stdout);
    let objects: Vec<serde_json::Value> = text
        .split("---\n")
        .filter(|document| !document.trim().is_empty())
        .map(|document| serde_yaml_ng::from_str(document).unwrap())
        .collect();
    let names: Vec<String> = objects
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    for expected in [
        "WasmPlugin kea-demo-kea",
        "VirtualService kea-pets",
        "VirtualService kea-demo-docs",
    ] {
        assert!(names.contains(&expected.to_string()), "{expected}: {names:?}");
    }
    let module = objects
        .iter()
        .find(|o| o["metadata"]["name"] == "kea-demo-kea")
        .unwrap();
    assert_eq!(module["spec"]["url"], "oci://registry.example/kea/kea:0.1.0");
    assert!(module["spec"]["pluginConfig"]["auth"].is_object(), "{module}");
    let pets = objects
        .iter()
        .find(|o| o["metadata"]["name"] == "kea-pets")
        .unwrap();
    assert_eq!(
        pets["spec"]["gateways"],
        serde_json::json!(["istio-system/ingressgateway"])
    );

    // Without a place for the modules there is nothing to point the WasmPlugins at.
    let (ok, _, stderr) = kea(&[
        "render",
        "--kubernetes",
        &demo.join("gateway.yaml").display().to_string(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("--plugin-url"), "{stderr}");
}
