//! Prints what `bench/web-validator.mjs` loads into the browser: a page configuration (the
//! validate plugin's `ValidateConfig` with the bundle of `bench/pets-api.yaml`, compiled as
//! `kea openapi bundle` does) and the benchmark's requests, each with the outcome this native build
//! gives — the browser build must answer exactly the same.
//!
//! `cargo run -p kea-web-validator --example page_fixture [-- DOCUMENT]`

use kea_schema::{Bundle, Sources};
use kea_web_validator::engine::{Engine, PageRequest};
use serde_json::{json, Value};
use std::error::Error;
use std::path::{Path, PathBuf};

/// The upstream's ~1 KB pet document that the gateway benchmark POSTs (same text as
/// `schema/benches/validator.rs` and `kea_e2e::upstream::payload`).
const PET: &str = r#"{"id":"c0ffee00-1234-4abc-9def-0123456789ab","name":"Sample resource","kind":"pet","status":"available","tags":[{"id":1,"name":"friendly"},{"id":2,"name":"vaccinated"},{"id":3,"name":"house-trained"}],"owner":{"id":42,"name":"Alice Example","email":"alice@example.com","address":{"street":"1 Main Street","city":"Springfield","zip":"12345","country":"US"}},"photos":["https://img.example.com/p/1.jpg","https://img.example.com/p/2.jpg","https://img.example.com/p/3.jpg"],"attributes":{"weight":4.2,"height":31.5,"color":"tabby","born":"2021-04-01","microchip":"985112004512345"},"history":[{"at":"2024-01-02T10:00:00Z","event":"registered"},{"at":"2024-02-03T11:30:00Z","event":"vaccinated"},{"at":"2024-03-04T09:15:00Z","event":"checkup"}],"links":{"self":"/pets/c0ffee00","owner":"/owners/42","photos":"/pets/c0ffee00/photos"},"notes":"A calm and friendly cat that enjoys sunny windows, gentle brushing and quiet evenings. Good with children."}"#;

fn main() -> Result<(), Box<dyn Error>> {
    let file = match std::env::args().nth(1) {
        Some(file) => PathBuf::from(file),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/pets-api.yaml"),
    };
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("the document's file name is not UTF-8")?;
    let sources = Sources::load(name, |n| std::fs::read(dir.join(n)).map_err(|e| e.to_string()))?;
    let bundle: Value = serde_json::from_slice(&Bundle::compile(&sources)?.to_json())?;
    // As the docs page builds it from what the operator publishes.
    let config = json!({
        "apis": [{"name": "pets", "bundle": bundle}],
        "defaults": {"api": "pets", "mode": "enforce", "maxErrors": 20, "maxBodyBytes": 1_048_576,
                     "unknownOperations": "reject", "bodies": ["json", "form", "text"]}
    })
    .to_string();
    let engine = Engine::new(&config)?;
    let invalid = PET
        .replace("\"kind\":\"pet\"", "\"kind\":\"fish\"")
        .replace("\"zip\":\"12345\"", "\"zip\":\"1\"");
    let json = [("content-type", "application/json")];
    let cases = [
        ("valid POST, 1 KB JSON body", "POST", "/pets", &json[..], PET),
        (
            "invalid POST, 1 KB JSON body (2 errors)",
            "POST",
            "/pets",
            &json[..],
            invalid.as_str(),
        ),
        (
            "valid GET, path + 3 query parameters",
            "GET",
            "/pets/1?fields=name,tags,owner&limit=20&since=2024-01-01",
            &[][..],
            "",
        ),
        (
            "invalid GET (3 errors)",
            "GET",
            "/pets/0?fields=legs&limit=1000",
            &[][..],
            "",
        ),
    ];
    let mut requests = Vec::new();
    for (label, method, target, headers, body) in cases {
        let request = PageRequest {
            method: method.into(),
            target: target.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        };
        let expected = engine.check(&request)?;
        requests.push(json!({
            "name": label, "method": method, "target": target, "headers": request.headers,
            "body": body, "expected": expected,
        }));
    }
    println!("{}", json!({"config": config, "requests": requests}));
    Ok(())
}
