//! `kea model package MODEL.yaml -o DIR` and `kea model openapi MODEL.yaml`: the files the
//! operator's build Job bakes into a version's image, written for Docker users, and the model's
//! OpenAPI document — both from the same renderers the operator uses.

use crate::crd::ModelSpec;
use crate::render::model::{self, openapi, package};
use crate::render::Key;
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use tracing::instrument;

/// `kea model package` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct PackageArgs {
    /// A YAML file holding one `Model` (other documents are ignored).
    pub file: PathBuf,
    /// Directory to write `<version>/{model.py, model-settings.json, requirements.txt, Dockerfile}`
    /// and `openapi.json` into (created if missing).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Only this version (default: every version).
    #[arg(long)]
    pub version: Option<String>,
    /// The runtime image the Dockerfile starts from (default `kea/runtime-<framework>:<version>`,
    /// as `scripts/images.sh` names it).
    #[arg(long)]
    pub runtime_image: Option<String>,
    /// Where the model's files are when the package is served outside a Pod (`mlserver start
    /// DIR/<version>`): `parameters.uri` in model-settings.json (default `/mnt/models`, where the
    /// Pod's init container puts them).
    #[arg(long, value_name = "DIR")]
    pub files_dir: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
struct Resource {
    kind: Option<String>,
    #[serde(default)]
    metadata: Metadata,
    spec: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct Metadata {
    name: Option<String>,
    namespace: Option<String>,
}

/// The first `Model` in `file`, checked as the operator checks it.
#[instrument(level = "debug", err(level = "debug", Display))]
pub fn read_model(file: &Path) -> Result<(Key, ModelSpec)> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    for (index, document) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
        let resource = Resource::deserialize(document)
            .with_context(|| format!("{}: document {}", file.display(), index + 1))?;
        if resource.kind.as_deref() != Some("Model") {
            continue;
        }
        let name = resource.metadata.name.ok_or_else(|| {
            anyhow!(
                "{}: document {}: metadata.name is missing",
                file.display(),
                index + 1
            )
        })?;
        let spec_value = resource
            .spec
            .ok_or_else(|| anyhow!("{}: Model {name}: spec is missing", file.display()))?;
        let spec: ModelSpec = serde_path_to_error::deserialize(spec_value).map_err(|error| {
            anyhow!(
                "{}: Model {name}: spec.{}: {}",
                file.display(),
                error.path(),
                error.inner()
            )
        })?;
        let key = Key::new(
            resource.metadata.namespace.unwrap_or_else(|| "default".into()),
            name,
        );
        model::check(&key.name, &spec)
            .map_err(|problem| anyhow!("{}: Model {key}: {problem}", file.display()))?;
        return Ok((key, spec));
    }
    bail!("{}: no document of kind Model", file.display())
}

/// Writes the packages and the OpenAPI document; returns the files written.
#[instrument(level = "debug", err(level = "debug", Display))]
pub fn package(args: &PackageArgs) -> Result<Vec<PathBuf>> {
    let (key, spec) = read_model(&args.file)?;
    let checked = model::check(&key.name, &spec).map_err(|problem| anyhow!("Model {key}: {problem}"))?;
    if let Some(wanted) = &args.version {
        if !checked.versions.iter().any(|v| &v.name == wanted) {
            bail!("Model {key} has no version {wanted:?}");
        }
    }
    let runtime_image = args
        .runtime_image
        .clone()
        .unwrap_or_else(|| package::default_runtime_image(spec.framework));
    let mut written = Vec::new();
    let mut write = |path: PathBuf, text: &str| -> Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
        Ok(())
    };
    for version in &checked.versions {
        if args
            .version
            .as_ref()
            .is_some_and(|wanted| wanted != &version.name)
        {
            continue;
        }
        if matches!(version.source, model::Source::Image(_)) {
            eprintln!("version {}: a ready image, nothing to package", version.name);
            continue;
        }
        let package = model::objects::version_package(&key, &spec, version, &runtime_image);
        for (name, text) in &package.files {
            let text = match (&args.files_dir, *name) {
                (Some(dir), "model-settings.json") => with_files_dir(text, dir)?,
                _ => text.clone(),
            };
            write(args.output.join(&version.name).join(name), &text)?;
        }
    }
    let document = serde_json::to_string_pretty(&openapi::document(&key.name, &spec))?;
    write(args.output.join("openapi.json"), &(document + "\n"))?;
    Ok(written)
}

/// model-settings.json with its files in `dir`.
fn with_files_dir(settings: &str, dir: &Path) -> Result<String> {
    let mut settings: serde_json::Value = serde_json::from_str(settings)?;
    let absolute = std::path::absolute(dir).with_context(|| format!("{}", dir.display()))?;
    let parameters = settings
        .get_mut("parameters")
        .and_then(serde_json::Value::as_object_mut)
        .ok_or_else(|| anyhow!("model-settings.json has no parameters"))?;
    parameters.insert("uri".into(), serde_json::json!(absolute.display().to_string()));
    Ok(serde_json::to_string_pretty(&settings)? + "\n")
}

/// The model's OpenAPI document (JSON).
#[instrument(level = "debug", err(level = "debug", Display))]
pub fn document(file: &Path) -> Result<String> {
    let (key, spec) = read_model(file)?;
    Ok(serde_json::to_string_pretty(&openapi::document(&key.name, &spec))? + "\n")
}
