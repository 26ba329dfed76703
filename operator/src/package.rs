//! `kea model package MODEL.yaml -o DIR` and `kea model openapi MODEL.yaml`: the files the
//! operator's build Job bakes into a version's image, written for Docker users, and the model's
//! OpenAPI document — both from the same renderers the operator uses. A `custom` model whose
//! resource gives no signature has it read from its serving class (`--source DIR`,
//! `--files-dir DIR`; [`crate::render::model::source`]), and `kea model signature FILE.py` prints
//! what a class declares (`--json`: the report the operator's build Jobs write,
//! [`crate::render::model::documented`]).

use crate::crd::{Framework, ModelSpec, Signature};
use crate::render::model::documented::Report;
use crate::render::model::openapi::Descriptions;
use crate::render::model::source::{self, SourceProblem, SourceSignature};
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
    /// Pod's init container puts them). A custom model without `spec.signature` has its
    /// signature read from its serving class there (for openapi.json).
    #[arg(long, value_name = "DIR")]
    pub files_dir: Option<PathBuf>,
}

/// `kea model openapi` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct OpenApiArgs {
    /// A YAML file holding one Model.
    pub file: PathBuf,
    /// The model's files (a checkout of its git repository, an unpacked archive): a custom model
    /// without `spec.signature` has its signature and descriptions read from the serving class
    /// its versions' `className` names there.
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,
}

/// `kea model signature` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct SignatureArgs {
    /// A Python file holding the serving class, or the model's files (a directory: the class
    /// `--class module.Class` names is read from `module.py` or `module/__init__.py` there).
    pub file: PathBuf,
    /// The class (`Classifier` or `serving.Classifier`); default: the file's only class with a
    /// `predict` method.
    #[arg(long = "class", value_name = "NAME")]
    pub class_name: Option<String>,
    /// Print the machine-readable report the operator's build Jobs write instead — one line of
    /// JSON, `{"signature", "descriptions", "source", "class", "convention"}` or `{"problem":
    /// {"reason", "file", "line", "message"}}`, at most 4096 bytes — and exit 0 either way.
    #[arg(long)]
    pub json: bool,
    /// With `--json`: also write the report to this file (a container's termination log).
    #[arg(long, value_name = "PATH", requires = "json")]
    pub termination_log: Option<PathBuf>,
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
    let (spec, descriptions) = with_source(&key, spec, args.files_dir.as_deref())?;
    let document =
        serde_json::to_string_pretty(&openapi::described_document(&key.name, &spec, &descriptions))?;
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
pub fn document(args: &OpenApiArgs) -> Result<String> {
    let (key, spec) = read_model(&args.file)?;
    if spec.framework == Framework::Custom && spec.signature.is_none() && args.source.is_none() {
        eprintln!("Model {key} declares no signature: pass --source DIR to read it from the serving class");
    }
    let (spec, descriptions) = with_source(&key, spec, args.source.as_deref())?;
    Ok(serde_json::to_string_pretty(&openapi::described_document(&key.name, &spec, &descriptions))? + "\n")
}

/// The spec with the signature its serving class declares in `dir`, when it is a custom model
/// whose resource gives none; and the class's descriptions.
#[instrument(level = "debug", skip(spec), err(level = "debug", Display))]
pub fn with_source(key: &Key, mut spec: ModelSpec, dir: Option<&Path>) -> Result<(ModelSpec, Descriptions)> {
    let Some(dir) = dir else {
        return Ok((spec, Descriptions::default()));
    };
    if spec.framework != Framework::Custom || spec.signature.is_some() {
        return Ok((spec, Descriptions::default()));
    }
    let mut read: Option<(String, SourceSignature)> = None;
    for version in &spec.versions {
        let Some(class_name) = &version.class_name else {
            continue;
        };
        let found = read_class(dir, class_name)?;
        match &read {
            None => read = Some((version.name.clone(), found)),
            Some((first, signature)) if signature.signature != found.signature => bail!(
                "Model {key}: versions {first} and {} declare different signatures in their classes; give spec.signature",
                version.name
            ),
            Some(_) => {}
        }
    }
    let Some((_, found)) = read else {
        bail!("Model {key}: no version names a className to read the signature from");
    };
    spec.signature = Some(found.signature);
    model::check(&key.name, &spec).map_err(|problem| anyhow!("Model {key}: {problem}"))?;
    Ok((spec, found.descriptions))
}

/// The serving class `module.Class` in the model directory `dir`.
#[instrument(level = "debug", err(level = "debug", Display))]
pub fn read_class(dir: &Path, class_name: &str) -> Result<SourceSignature> {
    let relative = class_file(dir, class_name)?;
    read_file(&dir.join(relative), Some(class_name))
}

/// The file of `module.Class` in `dir`, relative to it.
#[instrument(level = "debug", err(level = "debug", Display))]
fn class_file(dir: &Path, class_name: &str) -> Result<PathBuf> {
    let candidates = source::module_files(class_name)
        .ok_or_else(|| anyhow!("className {class_name:?}: expected module.Class, e.g. serving.Classifier"))?;
    let Some(file) = candidates.iter().find(|path| dir.join(path).is_file()) else {
        bail!(
            "className {class_name:?}: none of {} in {}",
            candidates
                .iter()
                .map(|path| path.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            dir.display()
        );
    };
    Ok(file.clone())
}

/// The signature the class in a Python file declares; a [`SourceProblem`] (as the error) when it
/// declares none.
#[instrument(level = "debug", err(level = "debug", Display))]
pub fn read_file(file: &Path, class_name: Option<&str>) -> Result<SourceSignature> {
    read_file_as(file, &file.display().to_string(), class_name)
}

/// [`read_file`], naming the file `name` in problems.
#[instrument(level = "debug", err(level = "debug", Display))]
fn read_file_as(file: &Path, name: &str, class_name: Option<&str>) -> Result<SourceSignature> {
    let name = name.to_string();
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {name}"))?;
    if bytes.len() > source::MAX_SOURCE_BYTES {
        return Err(SourceProblem {
            kind: source::ProblemKind::SourceTooLarge,
            file: name,
            line: 1,
            reason: format!(
                "{} bytes is more than a serving class's source may have ({})",
                bytes.len(),
                source::MAX_SOURCE_BYTES
            ),
        }
        .into());
    }
    let text = String::from_utf8(bytes).map_err(|error| SourceProblem {
        kind: source::ProblemKind::SyntaxError,
        file: name.clone(),
        line: 1,
        reason: format!(
            "not UTF-8 text (byte {}): Python source is UTF-8",
            error.utf8_error().valid_up_to()
        ),
    })?;
    Ok(source::read_signature(&name, &text, class_name)?)
}

/// `kea model signature`: the YAML to paste into the Model resource, or with `--json` the report
/// of a build Job ([`signature_report`]).
#[instrument(level = "debug", err(level = "debug", Display))]
pub fn signature(args: &SignatureArgs) -> Result<String> {
    if !args.json {
        return signature_yaml(args);
    }
    let message = signature_report(&args.file, args.class_name.as_deref()).to_message();
    if let Some(path) = &args.termination_log {
        // The report is on stdout too; a build never fails for its docs.
        if let Err(error) = std::fs::write(path, &message) {
            eprintln!("warning: cannot write {}: {error}", path.display());
        }
    }
    Ok(message + "\n")
}

/// The YAML to paste into the Model resource, descriptions as comments.
#[instrument(level = "debug", err(level = "debug", Display))]
pub fn signature_yaml(args: &SignatureArgs) -> Result<String> {
    let class_name = args.class_name.as_deref();
    let (file, found) = match (args.file.is_dir(), class_name) {
        (true, Some(class_name)) => {
            let relative = class_file(&args.file, class_name)?;
            let file = args.file.join(relative);
            let found = read_file(&file, Some(class_name))?;
            (file, found)
        }
        (true, None) => bail!(
            "{} is a directory: name the class as --class module.Class",
            args.file.display()
        ),
        (false, _) => (args.file.clone(), read_file(&args.file, class_name)?),
    };
    Ok(render_signature(&file.display().to_string(), &found))
}

/// What the class at `path` (a file, or the model's files with `class_name` = `module.Class`)
/// declares, as the build Job reports it; files are named relative to a directory.
#[instrument(level = "debug")]
pub fn signature_report(path: &Path, class_name: Option<&str>) -> Report {
    let (file, name) = if path.is_dir() {
        let Some(class_name) = class_name else {
            return Report::problem(
                "ClassNotFound",
                "no className to find the serving class by".into(),
            );
        };
        let Some(candidates) = source::module_files(class_name) else {
            return Report::problem(
                "ClassNotFound",
                format!("className {class_name}: expected module.Class, e.g. serving.Classifier"),
            );
        };
        let Some(relative) = candidates.iter().find(|file| path.join(file).is_file()) else {
            let names: Vec<String> = candidates.iter().map(|file| file.display().to_string()).collect();
            return Report::problem(
                "ClassNotFound",
                format!(
                    "className {class_name}: the version's files hold none of {}",
                    names.join(", ")
                ),
            );
        };
        (path.join(relative), relative.display().to_string())
    } else {
        (path.to_path_buf(), path.display().to_string())
    };
    match read_file_as(&file, &name, class_name) {
        Ok(found) => Report::of(&name, Ok(found)),
        Err(error) => match error.downcast::<SourceProblem>() {
            Ok(problem) => Report::of(&name, Err(problem)),
            Err(error) => Report::problem("SourceUnreadable", format!("{error:#}")),
        },
    }
}

/// The signature as a `signature:` block with comments saying where it was read.
#[instrument(level = "debug", skip(found))]
pub fn render_signature(file: &str, found: &SourceSignature) -> String {
    #[derive(serde::Serialize)]
    struct Block<'a> {
        signature: &'a Signature,
    }
    let mut text = format!(
        "# Read from {file}, class {} (line {}, {} convention).\n",
        found.class_name,
        found.line,
        found.convention.name()
    );
    let descriptions = &found.descriptions;
    let comment = |text: &mut String, label: &str, value: &str| {
        for (index, line) in value.lines().enumerate() {
            let prefix = if index == 0 { label } else { "" };
            text.push_str(format!("# {prefix}{line}").trim_end());
            text.push('\n');
        }
    };
    if let Some(model) = &descriptions.model {
        comment(&mut text, "model: ", model);
    }
    if let Some(operation) = &descriptions.operation {
        comment(&mut text, "predict: ", operation);
    }
    for (name, value) in descriptions.inputs.iter().chain(descriptions.outputs.iter()) {
        comment(&mut text, &format!("{name}: "), value);
    }
    let yaml = serde_yaml_ng::to_string(&Block {
        signature: &found.signature,
    })
    .unwrap_or_default();
    text + &yaml
}
