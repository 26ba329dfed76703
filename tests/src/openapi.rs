//! OpenAPI test documents compiled into bundles for the validate plugin.

use anyhow::{anyhow, Result};
use kea_schema::{Bundle, Sources};
use serde_json::Value;
use std::path::PathBuf;

/// `schema/tests/data/<dir>`: `openapi` (the OpenAPI Initiative's examples) or `edge`.
pub fn data_dir(dir: &str) -> PathBuf {
    crate::repo_root().join("schema/tests/data").join(dir)
}

/// Compiles `root` (and the documents it refers to) from a test-data folder.
pub fn bundle(dir: &str, root: &str) -> Result<Bundle> {
    let folder = data_dir(dir);
    let sources = Sources::load(root, |name| {
        std::fs::read(folder.join(name)).map_err(|e| e.to_string())
    })
    .map_err(|e| anyhow!("{e}"))?;
    Bundle::compile(&sources).map_err(|e| anyhow!("{e}"))
}

/// The bundle as the JSON value a plugin configuration embeds.
pub fn bundle_value(dir: &str, root: &str) -> Result<Value> {
    Ok(serde_json::from_slice(&bundle(dir, root)?.to_json())?)
}
