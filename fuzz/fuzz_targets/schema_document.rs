//! OpenAPI documents into bundles (`kea_schema::compile_document`, JSON and YAML), then the
//! request validator built from them (`Api::compile`).
//!
//! Property: no panic (documents are operator-supplied, and the browser validator compiles
//! whatever a visitor pastes), and a bundle that compiles round-trips: `from_json(to_json(b))`
//! is `b` again.
#![no_main]

use kea_schema::{compile_document, Api, Bundle};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, document)) = data.split_first() else {
        return;
    };
    let name = if kind & 1 == 0 { "api.json" } else { "api.yaml" };
    let Ok(bundle) = compile_document(name, document) else {
        return;
    };
    let json = bundle.to_json();
    let again = Bundle::from_json(&json).unwrap_or_else(|e| panic!("a compiled bundle does not load: {e}"));
    assert_eq!(again, bundle, "the bundle changed through to_json/from_json");
    let _ = Api::compile(&bundle);
});
