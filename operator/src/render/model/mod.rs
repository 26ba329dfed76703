//! Models: what the operator makes of a `Model` — checked versions, the OpenAPI document generated
//! from the signature ([`openapi`]), the serving package `kea model package` writes and the build Job
//! bakes into an image ([`package`]), the Kubernetes objects per version ([`objects`]), the
//! signature a custom model's serving class declares in its source ([`source`]), and how the
//! operator reads it in the cluster and documents the model with it ([`documented`]).

pub mod documented;
pub mod objects;
pub mod openapi;
pub mod package;
pub mod source;

use super::Problem;
use crate::crd::{Framework, ModelSpec, ModelVersion, Signature, Tensor};
use tracing::instrument;

/// Where every Open Inference Protocol model lives on a server: `/v2/models/<name>`.
pub fn base_path(model: &str) -> String {
    format!("/v2/models/{model}")
}

/// Base path of one version's own endpoints.
pub fn version_base_path(model: &str, version: &str) -> String {
    format!("{}/versions/{version}", base_path(model))
}

/// Deployment and Service of a version: `<model>-<version>`.
pub fn version_object_name(model: &str, version: &str) -> String {
    format!("{model}-{version}")
}

/// The ApiDefinition publishing the model (all versions, weighted).
pub fn api_name(model: &str) -> String {
    format!("model-{model}")
}

/// The ApiDefinition of one version's pinned paths (`/versions/<v>/...`).
pub fn version_api_name(model: &str, version: &str) -> String {
    format!("model-{model}-{version}")
}

/// Where a version's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `http(s)://` — fetched by the init container.
    Http(String),
    /// `pvc://<claim>/<path>` — the claim is mounted read-only.
    Pvc { claim: String, path: String },
    /// A git repository, cloned by the init container.
    Git {
        url: String,
        revision: String,
        path: String,
    },
    /// A ready serving image: nothing is built or fetched.
    Image(String),
}

/// A version as the operator deploys it.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedVersion {
    pub name: String,
    pub source: Source,
    pub weight: u32,
    pub replicas: i32,
}

/// A spec that can be deployed.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub versions: Vec<CheckedVersion>,
}

/// Checks what the CRD schema cannot: one source per version, weights summing to 100, names
/// unique, a signature where the framework needs one (not `onnx`, whose file carries it, nor
/// `custom`, whose serving class declares it: [`source`]), no zero or negative dimensions, the
/// custom class.
#[instrument(level = "debug", skip_all, fields(model = model), err(level = "debug", Display))]
pub fn check(model: &str, spec: &ModelSpec) -> Result<Checked, Problem> {
    // `<model>-<version>` is a Service name: a DNS-1035 label of at most 63 characters.
    if model.len() + 1 + 20 > 63 || !model.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(Problem::invalid(
            "InvalidName",
            format!("metadata.name {model:?}: a model's name must start with a letter and be at most 42 characters (its Services are named <model>-<version>)"),
        ));
    }
    match (&spec.signature, spec.framework) {
        (Some(signature), _) => check_signature(signature)?,
        (None, Framework::Onnx | Framework::Custom) => {}
        (None, framework) => {
            return Err(Problem::invalid(
                "SignatureRequired",
                format!(
                    "spec.signature: required for framework {} (only ONNX files carry their own, and custom classes declare theirs in their source)",
                    framework.name()
                ),
            ))
        }
    }
    if spec.versions.is_empty() {
        return Err(Problem::invalid(
            "NoVersions",
            "spec.versions: at least one version is needed",
        ));
    }
    let mut versions = Vec::new();
    for (index, version) in spec.versions.iter().enumerate() {
        let at = format!("spec.versions[{index}]");
        if spec
            .versions
            .iter()
            .take(index)
            .any(|other| other.name == version.name)
        {
            return Err(Problem::invalid(
                "DuplicateVersion",
                format!("{at}.name: version {:?} is listed twice", version.name),
            ));
        }
        let source = source(&at, version)?;
        if spec.framework == Framework::Custom
            && version.class_name.is_none()
            && !matches!(source, Source::Image(_))
        {
            return Err(Problem::invalid(
                "ClassNameRequired",
                format!("{at}.className: a custom model names its class, e.g. serving.Classifier"),
            ));
        }
        let weight = match (version.weight, spec.versions.len()) {
            (Some(weight), _) => weight,
            (None, 1) => 100,
            (None, _) => {
                return Err(Problem::invalid(
                    "WeightRequired",
                    format!("{at}.weight: with several versions each one gives its percent of traffic"),
                ))
            }
        };
        versions.push(CheckedVersion {
            name: version.name.clone(),
            source,
            weight,
            replicas: version.replicas.unwrap_or(1),
        });
    }
    let total: u32 = versions.iter().map(|version| version.weight).sum();
    if total != 100 {
        return Err(Problem::invalid(
            "WeightsDoNotSumTo100",
            format!(
                "spec.versions[*].weight: {} sum to {total}, not 100",
                versions
                    .iter()
                    .map(|version| format!("{}={}", version.name, version.weight))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(Checked { versions })
}

fn source(at: &str, version: &ModelVersion) -> Result<Source, Problem> {
    let given = [
        version.storage_uri.is_some(),
        version.git.is_some(),
        version.image.is_some(),
    ];
    if given.iter().filter(|set| **set).count() != 1 {
        return Err(Problem::invalid(
            "InvalidSource",
            format!("{at}: give exactly one of storageUri, git, image"),
        ));
    }
    if let Some(image) = &version.image {
        return Ok(Source::Image(image.clone()));
    }
    if let Some(git) = &version.git {
        if !["https://", "http://", "git://", "ssh://"]
            .iter()
            .any(|scheme| git.url.starts_with(scheme))
        {
            return Err(Problem::invalid(
                "InvalidSource",
                format!(
                    "{at}.git.url {:?}: an https://, http://, git:// or ssh:// URL",
                    git.url
                ),
            ));
        }
        let path = git.path.clone().unwrap_or_default();
        if path.split('/').any(|segment| segment == "..") || path.starts_with('/') {
            return Err(Problem::invalid(
                "InvalidSource",
                format!("{at}.git.path {path:?}: a relative path inside the repository"),
            ));
        }
        return Ok(Source::Git {
            url: git.url.clone(),
            revision: git.revision.clone().unwrap_or_else(|| "HEAD".into()),
            path,
        });
    }
    let uri = version.storage_uri.clone().unwrap_or_default();
    if uri.starts_with("http://") || uri.starts_with("https://") {
        return Ok(Source::Http(uri));
    }
    if let Some(rest) = uri.strip_prefix("pvc://") {
        let (claim, path) = rest.split_once('/').unwrap_or((rest, ""));
        let dns_label = !claim.is_empty()
            && claim.len() <= 253
            && claim
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !dns_label || path.split('/').any(|segment| segment == "..") {
            return Err(Problem::invalid(
                "InvalidSource",
                format!("{at}.storageUri {uri:?}: pvc://<claim>/<path inside the claim>"),
            ));
        }
        return Ok(Source::Pvc {
            claim: claim.into(),
            path: path.trim_matches('/').into(),
        });
    }
    let scheme = uri.split_once("://").map(|(scheme, _)| scheme).unwrap_or("none");
    Err(Problem::invalid(
        "UnsupportedStorage",
        format!("{at}.storageUri {uri:?}: scheme {scheme} is not supported (http, https, pvc; or use git or image)"),
    ))
}

fn check_signature(signature: &Signature) -> Result<(), Problem> {
    for (kind, tensors) in [("inputs", &signature.inputs), ("outputs", &signature.outputs)] {
        for (index, tensor) in tensors.iter().enumerate() {
            let at = format!("spec.signature.{kind}[{index}]");
            if tensors.iter().take(index).any(|other| other.name == tensor.name) {
                return Err(Problem::invalid(
                    "InvalidSignature",
                    format!("{at}.name: {:?} is declared twice", tensor.name),
                ));
            }
            check_shape(&at, tensor)?;
            if tensor.optional && kind == "outputs" {
                return Err(Problem::invalid(
                    "InvalidSignature",
                    format!("{at}.optional: only inputs can be optional"),
                ));
            }
        }
    }
    if !signature.inputs.is_empty() && signature.inputs.iter().all(|tensor| tensor.optional) {
        return Err(Problem::invalid(
            "InvalidSignature",
            "spec.signature.inputs: at least one input must be required (not optional)",
        ));
    }
    if signature.inputs.is_empty() {
        return Err(Problem::invalid(
            "InvalidSignature",
            "spec.signature.inputs: at least one input",
        ));
    }
    Ok(())
}

fn check_shape(at: &str, tensor: &Tensor) -> Result<(), Problem> {
    if tensor.shape.len() > 8 {
        return Err(Problem::invalid(
            "InvalidSignature",
            format!("{at}.shape: rank {} is more than 8", tensor.shape.len()),
        ));
    }
    for (index, dim) in tensor.shape.iter().enumerate() {
        if *dim == 0 || *dim < -1 {
            return Err(Problem::invalid(
                "InvalidSignature",
                format!("{at}.shape[{index}]: {dim} is not a dimension (a positive size, or -1 for any)"),
            ));
        }
    }
    let fixed: i64 = tensor.shape.iter().filter(|dim| **dim > 0).product();
    if fixed > 1 << 24 {
        return Err(Problem::invalid(
            "InvalidSignature",
            format!("{at}.shape: {fixed} elements per item is more than the gateway reads"),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;
    use crate::crd::{Datatype, GitSource};

    pub fn iris() -> ModelSpec {
        ModelSpec {
            framework: Framework::Sklearn,
            signature: Some(Signature {
                inputs: vec![Tensor {
                    name: "input-0".into(),
                    datatype: Datatype::Fp32,
                    shape: vec![-1, 4],
                    optional: false,
                }],
                outputs: vec![Tensor {
                    name: "predict".into(),
                    datatype: Datatype::Int64,
                    shape: vec![-1],
                    optional: false,
                }],
            }),
            versions: vec![
                ModelVersion {
                    name: "v1".into(),
                    storage_uri: Some("http://files.example/iris-v1.joblib".into()),
                    weight: Some(90),
                    ..Default::default()
                },
                ModelVersion {
                    name: "v2".into(),
                    git: Some(GitSource {
                        url: "git://10.250.0.1/models".into(),
                        revision: Some("main".into()),
                        path: Some("iris".into()),
                    }),
                    weight: Some(10),
                    ..Default::default()
                },
            ],
            gateway: "edge".into(),
            hosts: vec!["models.example.com".into()],
            ..Default::default()
        }
    }

    #[test]
    fn a_good_spec_is_checked() {
        let checked = check("iris", &iris()).unwrap();
        assert_eq!(checked.versions.len(), 2);
        assert_eq!(
            checked.versions[0].source,
            Source::Http("http://files.example/iris-v1.joblib".into())
        );
        assert_eq!(
            checked.versions[1].source,
            Source::Git {
                url: "git://10.250.0.1/models".into(),
                revision: "main".into(),
                path: "iris".into()
            }
        );
    }

    #[test]
    fn bad_specs_name_the_field_and_the_reason() {
        let mut spec = iris();
        spec.versions[1].weight = Some(20);
        let problem = check("iris", &spec).unwrap_err();
        assert_eq!(problem.reason, "WeightsDoNotSumTo100");
        assert!(problem.message.contains("v1=90, v2=20 sum to 110"), "{problem}");

        let mut spec = iris();
        spec.signature.as_mut().unwrap().inputs[0].shape = vec![-1, 0];
        let problem = check("iris", &spec).unwrap_err();
        assert_eq!(problem.reason, "InvalidSignature");
        assert!(
            problem.message.contains("spec.signature.inputs[0].shape[1]: 0"),
            "{problem}"
        );

        let mut spec = iris();
        spec.versions[0].image = Some("example/iris:1".into());
        assert_eq!(check("iris", &spec).unwrap_err().reason, "InvalidSource");

        let mut spec = iris();
        spec.versions[0].storage_uri = Some("s3://bucket/iris".into());
        let problem = check("iris", &spec).unwrap_err();
        assert_eq!(problem.reason, "UnsupportedStorage");
        assert!(problem.message.contains("scheme s3"), "{problem}");

        let mut spec = iris();
        spec.signature = None;
        assert_eq!(check("iris", &spec).unwrap_err().reason, "SignatureRequired");
        spec.framework = Framework::Onnx;
        assert!(check("iris", &spec).is_ok());

        let mut spec = iris();
        spec.framework = Framework::Custom;
        assert_eq!(check("iris", &spec).unwrap_err().reason, "ClassNameRequired");
        // A custom model without a signature declares it in its serving class.
        spec.signature = None;
        for version in &mut spec.versions {
            version.class_name = Some("serving.Classifier".into());
        }
        assert!(check("iris", &spec).is_ok());

        let mut spec = iris();
        spec.signature.as_mut().unwrap().outputs[0].optional = true;
        let problem = check("iris", &spec).unwrap_err();
        assert!(
            problem.message.contains("spec.signature.outputs[0].optional"),
            "{problem}"
        );
        let mut spec = iris();
        spec.signature.as_mut().unwrap().inputs[0].optional = true;
        assert_eq!(check("iris", &spec).unwrap_err().reason, "InvalidSignature");

        let mut spec = iris();
        spec.versions[1].name = "v1".into();
        assert_eq!(check("iris", &spec).unwrap_err().reason, "DuplicateVersion");

        let mut spec = iris();
        spec.versions[0].storage_uri = Some("pvc://models/../etc".into());
        assert_eq!(check("iris", &spec).unwrap_err().reason, "InvalidSource");
        spec.versions[0].storage_uri = Some("pvc://models/iris/v1".into());
        assert_eq!(
            check("iris", &spec).unwrap().versions[0].source,
            Source::Pvc {
                claim: "models".into(),
                path: "iris/v1".into()
            }
        );
    }
}
