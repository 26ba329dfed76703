//! `kea openapi check|bundle FILE`: an OpenAPI 3.0 document (and the files its `$ref`s name)
//! compiled into a validate-plugin bundle, or the precise reason it cannot be.

use anyhow::{anyhow, Context, Result};
use kea_schema::{Api, Bundle, Sources};
use std::path::{Path, PathBuf};
use tracing::instrument;

/// Loads `file` and the documents it refers to (relative to it) and compiles the bundle, then
/// the validators the plugin will build from it, so a bundle that passes here loads there.
#[instrument(level = "debug", err(level = "debug", Display), fields(file = %file.display()))]
pub fn compile(file: &Path) -> Result<Bundle> {
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .context("the file name is not UTF-8")?;
    let sources = Sources::load(name, |relative| {
        let path: PathBuf = dir.join(relative);
        std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    })
    .map_err(|e| anyhow!("{}", located(&dir, &e)))?;
    let bundle = Bundle::compile(&sources).map_err(|e| anyhow!("{}", located(&dir, &e)))?;
    Api::compile(&bundle).map_err(|e| anyhow!("{}: {e}", file.display()))?;
    tracing::debug!(bundle = %summary(&bundle), "compiled");
    Ok(bundle)
}

/// The bundle's warnings (keywords that are not checked), each with its document's path as the
/// user wrote it, as errors are: `specs/api.yaml#/components/schemas/Pet/const: …`.
#[instrument(level = "debug", skip_all, fields(file = %file.display()))]
pub fn warnings(file: &Path, bundle: &Bundle) -> Vec<String> {
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    bundle
        .warnings
        .iter()
        .map(|warning| match warning.split_once('#') {
            Some((document, rest)) => format!("{}#{rest}", dir.join(document).display()),
            // The line counting the warnings left out.
            None => warning.clone(),
        })
        .collect()
}

/// The error with the document's path as the user wrote it.
fn located(dir: &Path, error: &kea_schema::DocumentError) -> String {
    format!(
        "{}#{}: {}",
        dir.join(&error.document).display(),
        error.pointer,
        error.reason
    )
}

/// One line about a compiled bundle.
#[instrument(level = "debug", skip_all)]
pub fn summary(bundle: &Bundle) -> String {
    format!(
        "{} {}: {} operations, {} schema definitions, sha256 {}",
        bundle.title,
        bundle.version,
        bundle.operations.len(),
        bundle.definitions.len(),
        bundle.sha256
    )
}
