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
