//! The native cost of validating the benchmark's requests (bench/pets-api.yaml), next to the
//! wasm cost measured by `kea-bench`: routing + parameters of the GET, and the POST's ~1 KB body.
//!
//! `cargo bench -p kea-schema --bench validator`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use kea_schema::{compile_document, Api};
use std::hint::black_box;
use std::path::Path;

/// The upstream's document, which the benchmark POSTs (same text as `kea_e2e::upstream::payload`).
const PET: &str = r#"{"id":"c0ffee00-1234-4abc-9def-0123456789ab","name":"Sample resource","kind":"pet","status":"available","tags":[{"id":1,"name":"friendly"},{"id":2,"name":"vaccinated"},{"id":3,"name":"house-trained"}],"owner":{"id":42,"name":"Alice Example","email":"alice@example.com","address":{"street":"1 Main Street","city":"Springfield","zip":"12345","country":"US"}},"photos":["https://img.example.com/p/1.jpg","https://img.example.com/p/2.jpg","https://img.example.com/p/3.jpg"],"attributes":{"weight":4.2,"height":31.5,"color":"tabby","born":"2021-04-01","microchip":"985112004512345"},"history":[{"at":"2024-01-02T10:00:00Z","event":"registered"},{"at":"2024-02-03T11:30:00Z","event":"vaccinated"},{"at":"2024-03-04T09:15:00Z","event":"checkup"}],"links":{"self":"/pets/c0ffee00","owner":"/owners/42","photos":"/pets/c0ffee00/photos"},"notes":"A calm and friendly cat that enjoys sunny windows, gentle brushing and quiet evenings. Good with children."}"#;

fn api() -> Api {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/pets-api.yaml");
    let bundle = compile_document("pets-api.yaml", &std::fs::read(file).unwrap()).unwrap();
    Api::compile(&bundle).unwrap()
}

fn validator(c: &mut Criterion) {
    let api = api();
    let no_headers = |_: &str| None;
    c.bench_function("GET route + path and query parameters", |b| {
        b.iter(|| {
            let (operation, params) = api.route("GET", black_box("/pets/1")).unwrap();
            let query = Some(black_box("fields=name,tags,owner&limit=20&since=2024-01-01"));
            let issues = api.check_parameters(operation, &params, query, no_headers, 20);
            assert!(issues.is_empty());
        })
    });
    let (create, _) = api.route("POST", "/pets").unwrap();
    assert_eq!(
        api.check_body(create, Some("application/json"), PET.as_bytes(), 20),
        Ok(())
    );
    c.bench_function("POST 1 KB JSON body: parse + validate", |b| {
        b.iter(|| {
            api.check_body(create, Some("application/json"), black_box(PET.as_bytes()), 20)
                .unwrap()
        })
    });
    let invalid = PET
        .replace("\"kind\":\"pet\"", "\"kind\":\"fish\"")
        .replace("\"zip\":\"12345\"", "\"zip\":\"1\"");
    c.bench_function("POST 1 KB JSON body: invalid, two errors listed", |b| {
        b.iter(|| {
            api.check_body(
                create,
                Some("application/json"),
                black_box(invalid.as_bytes()),
                20,
            )
            .unwrap_err()
        })
    });
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/pets-api.yaml");
    let text = std::fs::read(file).unwrap();
    c.bench_function("compile document into bundle and validators", |b| {
        b.iter(|| Api::compile(&compile_document("pets-api.yaml", black_box(&text)).unwrap()).unwrap())
    });
}

criterion_group!(benches, validator);
criterion_main!(benches);
