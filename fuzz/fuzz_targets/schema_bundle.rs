//! Compiled bundles as the validate plugin receives them (`Bundle::from_json`: inline in its
//! configuration or fetched from a URL), then the validator built from them (`Api::compile`)
//! and a route lookup.
//!
//! Property: no panic, and a bundle that loads round-trips: `from_json(to_json(b)) == b`.
#![no_main]

use kea_schema::{Api, Bundle};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = Bundle::from_json(data) else {
        return;
    };
    let again = Bundle::from_json(&bundle.to_json())
        .unwrap_or_else(|e| panic!("a loaded bundle does not reload: {e}"));
    assert_eq!(again, bundle);
    if let Ok(api) = Api::compile(&bundle) {
        for (method, path) in [
            ("GET", "/"),
            ("POST", "/items"),
            ("GET", "/items/1"),
            ("DELETE", "/a/b/c"),
        ] {
            let _ = api.route(method, path);
        }
    }
});
