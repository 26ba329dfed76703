//! A `custom` model's docs read in the cluster. A custom Model without `spec.signature` has each
//! version's serving class read by its build Job: an init container running the operator's own
//! image (`kea model signature --json`) writes a [`Report`] to its termination log — the signature
//! and descriptions the class declares, or the [`source::SourceProblem`] that says why it declares
//! none. The controller reads it back ([`Report::parse`]), keeps it in `status.versions[]`, reports
//! the `Documented` condition ([`documented`]), and the published documents use it
//! ([`documented_spec`]).
//!
//! The termination message is JSON of at most [`MAX_REPORT_BYTES`] (Kubernetes keeps no more):
//!
//! ```json
//! {"signature": {"inputs": [...], "outputs": [...]}, "descriptions": {"model": "...", "operation": "...",
//!  "inputs": {"x": "..."}, "outputs": {...}}, "source": "serving.py:12", "class": "Classifier", "convention": "MLRun"}
//! {"problem": {"reason": "NoTensorsDeclared", "file": "serving.py", "line": 12, "message": "..."}}
//! ```

use super::openapi::Descriptions;
use super::source::{self, SourceProblem, SourceSignature};
use crate::crd::{Framework, ModelSpec, Signature, SignatureDescriptions, Verdict, VersionStatus};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use tracing::instrument;

/// The Model condition: whether its documents describe its tensors, and where they come from.
/// It does not count towards `Ready` (a model whose class cannot be read still serves, with the
/// generic Open Inference Protocol document).
pub const DOCUMENTED: &str = "Documented";
/// The build Job's init container that reads the serving class.
pub const SIGNATURE_CONTAINER: &str = "signature";
/// What Kubernetes keeps of a termination message.
pub const MAX_REPORT_BYTES: usize = 4096;

/// What `kea model signature --json` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Report {
    Read(Read),
    Problem { problem: ReportedProblem },
}

/// The signature a class declares, and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Read {
    pub signature: Signature,
    #[serde(default, skip_serializing_if = "descriptions_empty")]
    pub descriptions: SignatureDescriptions,
    /// `serving.py:12`: the class's file (relative to the model's files) and line.
    pub source: String,
    /// The class's name.
    #[serde(rename = "class")]
    pub class_name: String,
    /// `MLRun`, `KServe` or `MLServer`.
    pub convention: String,
}

/// Why no signature was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportedProblem {
    /// A condition reason: [`source::ProblemKind::reason`], or `ClassNotFound` (no file holds the
    /// module), `SourceUnreadable`, `SignatureTooLarge`.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// What is wrong and the fix.
    pub message: String,
}

fn descriptions_empty(descriptions: &SignatureDescriptions) -> bool {
    descriptions == &SignatureDescriptions::default()
}

impl ReportedProblem {
    /// `file:line: message`, as the condition says it (the message alone when no place is known).
    #[instrument(level = "trace", skip_all)]
    pub fn located(&self) -> String {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => format!("{file}:{line}: {}", self.message),
            (Some(file), None) => format!("{file}: {}", self.message),
            _ => self.message.clone(),
        }
    }
}

impl From<SourceProblem> for ReportedProblem {
    fn from(problem: SourceProblem) -> Self {
        Self {
            reason: problem.kind.reason().into(),
            file: Some(problem.file),
            line: Some(problem.line),
            message: problem.reason,
        }
    }
}

impl From<&Descriptions> for SignatureDescriptions {
    fn from(descriptions: &Descriptions) -> Self {
        Self {
            model: descriptions.model.clone(),
            operation: descriptions.operation.clone(),
            inputs: descriptions.inputs.clone(),
            outputs: descriptions.outputs.clone(),
        }
    }
}

impl From<&SignatureDescriptions> for Descriptions {
    fn from(descriptions: &SignatureDescriptions) -> Self {
        Self {
            model: descriptions.model.clone(),
            operation: descriptions.operation.clone(),
            inputs: descriptions.inputs.clone(),
            outputs: descriptions.outputs.clone(),
        }
    }
}

impl Read {
    /// `serving.py:12, MLRun class Classifier` (`status.versions[].signatureSource`).
    #[instrument(level = "trace", skip_all)]
    pub fn signature_source(&self) -> String {
        format!("{}, {} class {}", self.source, self.convention, self.class_name)
    }
}

impl Report {
    /// The report of what the class in `file` (named as the report shows it) declares; a
    /// signature the operator would refuse in `spec.signature` is a problem too.
    #[instrument(level = "debug", skip(read))]
    pub fn of(file: &str, read: Result<SourceSignature, SourceProblem>) -> Report {
        let found = match read {
            Ok(found) => found,
            Err(problem) => {
                return Report::Problem {
                    problem: problem.into(),
                }
            }
        };
        if let Err(problem) = super::check_signature(&found.signature) {
            return Report::Problem {
                problem: ReportedProblem {
                    reason: source::ProblemKind::InvalidSignature.reason().into(),
                    file: Some(file.into()),
                    line: Some(found.line),
                    message: format!(
                        "class {}: {}",
                        found.class_name,
                        problem.message.replace("spec.signature.", "")
                    ),
                },
            };
        }
        Report::Read(Read {
            signature: found.signature,
            descriptions: (&found.descriptions).into(),
            source: format!("{file}:{}", found.line),
            class_name: found.class_name,
            convention: found.convention.name().into(),
        })
    }

    /// A problem without a place in a file.
    #[instrument(level = "debug")]
    pub fn problem(reason: &str, message: String) -> Report {
        Report::Problem {
            problem: ReportedProblem {
                reason: reason.into(),
                file: None,
                line: None,
                message,
            },
        }
    }

    /// The termination message: compact JSON of at most [`MAX_REPORT_BYTES`]. A signature too
    /// large for it becomes a `SignatureTooLarge` problem; a problem's message is shortened.
    #[instrument(level = "debug", skip_all)]
    pub fn to_message(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        if text.len() <= MAX_REPORT_BYTES {
            return text;
        }
        match self {
            Report::Read(read) => {
                let (file, line) = match read.source.rsplit_once(':') {
                    Some((file, line)) => (Some(file.to_string()), line.parse().ok()),
                    None => (Some(read.source.clone()), None),
                };
                Report::Problem {
                    problem: ReportedProblem {
                        reason: "SignatureTooLarge".into(),
                        file,
                        line,
                        message: format!(
                            "class {}: its signature and descriptions take {} bytes as JSON, more than the {MAX_REPORT_BYTES} a build Job can report; shorten the docstrings or give spec.signature",
                            read.class_name,
                            text.len()
                        ),
                    },
                }
                .to_message()
            }
            Report::Problem { problem } => {
                let mut problem = problem.clone();
                let excess = text.len() - MAX_REPORT_BYTES + "…".len();
                let mut keep = problem.message.len().saturating_sub(excess);
                while !problem.message.is_char_boundary(keep) {
                    keep -= 1;
                }
                problem.message.truncate(keep);
                problem.message.push('…');
                let text = serde_json::to_string(&Report::Problem { problem }).unwrap_or_default();
                if text.len() <= MAX_REPORT_BYTES {
                    text
                } else {
                    // Only a file name that long is left: say that much.
                    Report::problem(
                        "SignatureTooLarge",
                        "the report does not fit a termination message".into(),
                    )
                    .to_message()
                }
            }
        }
    }

    /// A termination message read back; a signature is checked as `spec.signature` is.
    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    pub fn parse(message: &str) -> Result<Report, String> {
        if message.len() > MAX_REPORT_BYTES {
            return Err(format!(
                "{} bytes, more than a termination message holds",
                message.len()
            ));
        }
        let report: Report = serde_json::from_str(message.trim())
            .map_err(|error| format!("not a signature report: {error}"))?;
        if let Report::Read(read) = &report {
            super::check_signature(&read.signature).map_err(|problem| problem.message)?;
        }
        Ok(report)
    }
}

/// Whether the operator reads a version's serving class: a `custom` model without
/// `spec.signature`, a version built from files (not a ready image) that names its class.
#[instrument(level = "trace", skip_all, ret)]
pub fn reads_source<'a>(spec: &ModelSpec, version: &'a crate::crd::ModelVersion) -> Option<&'a str> {
    if spec.framework != Framework::Custom || spec.signature.is_some() || version.image.is_some() {
        return None;
    }
    version.class_name.as_deref()
}

/// Where one version's docs stand after a reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionDocs {
    /// Read: `serving.py:12, MLRun class Scorer`.
    Read(String),
    /// Not read: a condition reason and message.
    Problem { reason: String, message: String },
    /// The build has not reported yet.
    Pending,
}

/// The `Documented` condition of a Model from its versions' docs (spec order).
#[instrument(level = "debug", skip_all, ret)]
pub fn documented(spec: &ModelSpec, versions: &[(String, VersionDocs)]) -> Verdict {
    if spec.signature.is_some() {
        return Verdict::ok(DOCUMENTED, "FromResource", "the tensors are spec.signature's");
    }
    if spec.framework != Framework::Custom {
        return Verdict::ok(
            DOCUMENTED,
            "NotNeeded",
            format!(
                "the {} model file carries its tensors: the runtime reports them at the metadata endpoint, and the published document is the generic Open Inference Protocol one",
                spec.framework.name()
            ),
        );
    }
    let several = versions.len() > 1;
    let label = |version: &str, text: &str| {
        if several {
            format!("version {version}: {text}")
        } else {
            text.to_string()
        }
    };
    if let Some((version, reason, message)) = versions.iter().find_map(|(version, docs)| match docs {
        VersionDocs::Problem { reason, message } => Some((version, reason, message)),
        _ => None,
    }) {
        return Verdict::failed(DOCUMENTED, reason, label(version, message));
    }
    if let Some((version, _)) = versions.iter().find(|(_, docs)| *docs == VersionDocs::Pending) {
        return Verdict::failed(
            DOCUMENTED,
            "Reading",
            format!("version {version}: its build Job reads the serving class"),
        );
    }
    let read: Vec<String> = versions
        .iter()
        .filter_map(|(version, docs)| match docs {
            VersionDocs::Read(source) => Some(label(version, &format!("read from {source}"))),
            _ => None,
        })
        .collect();
    if read.is_empty() {
        return Verdict::failed(
            DOCUMENTED,
            "NoSource",
            "no version names a serving class to read the tensors from (ready images are not read); give spec.signature",
        );
    }
    Verdict::ok(DOCUMENTED, "FromSource", read.join("; "))
}

/// A version's tensors and descriptions read from its serving class.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceDocs {
    pub signature: Signature,
    pub descriptions: Descriptions,
}

/// The docs `status.versions[]` hold, by version.
#[instrument(level = "debug", skip_all)]
pub fn from_status(versions: &[VersionStatus]) -> BTreeMap<String, SourceDocs> {
    versions
        .iter()
        .filter_map(|version| {
            Some((
                version.name.clone(),
                SourceDocs {
                    signature: version.signature.clone()?,
                    descriptions: version
                        .descriptions
                        .as_ref()
                        .map(Descriptions::from)
                        .unwrap_or_default(),
                },
            ))
        })
        .collect()
}

/// The spec and descriptions a published document is generated from: the resource's when it
/// gives a signature; else, for a custom model, `version`'s own docs (a pinned API), or for the
/// weighted API (`None`) the first version's in spec order that has them; else the resource's
/// (the generic document).
#[instrument(level = "debug", skip(spec, read))]
pub fn documented_spec<'a>(
    spec: &'a ModelSpec,
    read: &BTreeMap<String, SourceDocs>,
    version: Option<&str>,
) -> (Cow<'a, ModelSpec>, Descriptions) {
    if spec.signature.is_some() || spec.framework != Framework::Custom {
        return (Cow::Borrowed(spec), Descriptions::default());
    }
    let docs = match version {
        Some(version) => read.get(version),
        None => spec.versions.iter().find_map(|version| read.get(&version.name)),
    };
    match docs {
        Some(docs) => {
            let mut documented = spec.clone();
            documented.signature = Some(docs.signature.clone());
            (Cow::Owned(documented), docs.descriptions.clone())
        }
        None => (Cow::Borrowed(spec), Descriptions::default()),
    }
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
    use crate::crd::{Datatype, ModelVersion, Tensor};
    use serde_json::json;

    const DOCUMENTED_CLASS: &str = r#"
class Scorer:
    """Scores rows with fixed weights."""

    def load(self):
        pass

    def predict(self, body):
        """Scores each row.

        Inputs:
            x (FP64[-1, 3]): three features per row.
        Outputs:
            score (FP64[-1]): the weighted sum.
        """
        return {"score": []}
"#;

    const PLAIN_CLASS: &str = "class Scorer:\n    def load(self):\n        pass\n\n    def predict(self, body):\n        return body\n";

    fn read(text: &str) -> Report {
        Report::of(
            "serving.py",
            source::read_signature("serving.py", text, Some("serving.Scorer")),
        )
    }

    #[test]
    fn reports_round_trip_through_the_termination_message() {
        let report = read(DOCUMENTED_CLASS);
        let message = report.to_message();
        let value: serde_json::Value = serde_json::from_str(&message).unwrap();
        assert_eq!(value["source"], "serving.py:2");
        assert_eq!(value["class"], "Scorer");
        assert_eq!(value["convention"], "MLRun");
        assert_eq!(
            value["signature"]["inputs"][0],
            json!({"name": "x", "datatype": "FP64", "shape": [-1, 3]})
        );
        assert_eq!(value["descriptions"]["inputs"]["x"], "three features per row.");
        assert_eq!(value["descriptions"]["operation"], "Scores each row.");
        let parsed = Report::parse(&message).unwrap();
        assert_eq!(parsed, report);
        let Report::Read(read) = parsed else { panic!() };
        assert_eq!(read.signature_source(), "serving.py:2, MLRun class Scorer");

        let problem = read_problem(PLAIN_CLASS);
        assert_eq!(problem.reason, "NoTensorsDeclared");
        assert_eq!(problem.file.as_deref(), Some("serving.py"));
        assert_eq!(problem.line, Some(5));
        assert!(
            problem
                .located()
                .starts_with("serving.py:5: Scorer.predict(self, body)"),
            "{}",
            problem.located()
        );
    }

    fn read_problem(text: &str) -> ReportedProblem {
        let message = read(text).to_message();
        let value: serde_json::Value = serde_json::from_str(&message).unwrap();
        assert!(value["problem"]["message"].is_string(), "{value}");
        match Report::parse(&message).unwrap() {
            Report::Problem { problem } => problem,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reports_fit_a_termination_message() {
        // A signature too large for 4096 bytes is a problem, not a truncated JSON.
        let inputs: String = (0..200)
            .map(|index| format!("            input_{index} (FP32[-1, 4]): feature number {index}.\n"))
            .collect();
        let class =
            DOCUMENTED_CLASS.replace("            x (FP64[-1, 3]): three features per row.\n", &inputs);
        let message = read(&class).to_message();
        assert!(message.len() <= MAX_REPORT_BYTES, "{}", message.len());
        let Report::Problem { problem } = Report::parse(&message).unwrap() else {
            panic!("{message}")
        };
        assert_eq!(problem.reason, "SignatureTooLarge");
        assert_eq!(
            problem.located().split(':').take(2).collect::<Vec<_>>(),
            ["serving.py", "2"]
        );
        // A long problem message is shortened.
        let long = Report::problem("ClassNotFound", "é".repeat(5000)).to_message();
        assert!(long.len() <= MAX_REPORT_BYTES, "{}", long.len());
        assert!(Report::parse(&long).is_ok());
    }

    #[test]
    fn bad_messages_are_refused() {
        assert!(Report::parse("").is_err());
        assert!(Report::parse("sha256:00").is_err());
        assert!(Report::parse(
            r#"{"signature": {"inputs": []}, "source": "a:1", "class": "C", "convention": "MLRun"}"#
        )
        .is_err());
        let zero = r#"{"signature": {"inputs": [{"name": "x", "datatype": "FP32", "shape": [0]}]}, "source": "a:1", "class": "C", "convention": "MLRun"}"#;
        assert!(Report::parse(zero).unwrap_err().contains("shape[0]"));
        assert!(Report::parse(&"x".repeat(5000)).is_err());
    }

    fn custom() -> ModelSpec {
        ModelSpec {
            framework: Framework::Custom,
            versions: ["v1", "v2"]
                .iter()
                .map(|name| ModelVersion {
                    name: (*name).into(),
                    class_name: Some("serving.Scorer".into()),
                    weight: Some(50),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_documented_condition() {
        let mut spec = custom();
        let read = |source: &str| VersionDocs::Read(source.into());
        let verdict = documented(
            &spec,
            &[
                ("v1".into(), read("serving.py:2, MLRun class Scorer")),
                ("v2".into(), read("serving.py:3, MLRun class Scorer")),
            ],
        );
        assert!(verdict.ok);
        assert_eq!(verdict.reason, "FromSource");
        assert_eq!(
            verdict.message,
            "version v1: read from serving.py:2, MLRun class Scorer; version v2: read from serving.py:3, MLRun class Scorer"
        );
        let problem = VersionDocs::Problem {
            reason: "NoTensorsDeclared".into(),
            message: "serving.py:5: no tensors".into(),
        };
        let verdict = documented(
            &spec,
            &[
                ("v1".into(), VersionDocs::Pending),
                ("v2".into(), problem.clone()),
            ],
        );
        assert!(!verdict.ok);
        assert_eq!(verdict.reason, "NoTensorsDeclared");
        assert_eq!(verdict.message, "version v2: serving.py:5: no tensors");
        assert_eq!(
            documented(&spec, &[("v1".into(), problem)]).message,
            "serving.py:5: no tensors"
        );
        assert_eq!(
            documented(&spec, &[("v1".into(), VersionDocs::Pending)]).reason,
            "Reading"
        );
        assert_eq!(documented(&spec, &[]).reason, "NoSource");
        spec.signature = Some(Signature::default());
        assert_eq!(documented(&spec, &[]).reason, "FromResource");
        spec.signature = None;
        spec.framework = Framework::Onnx;
        let verdict = documented(&spec, &[]);
        assert!(verdict.ok);
        assert_eq!(verdict.reason, "NotNeeded");
    }

    #[test]
    fn documents_use_the_versions_read_signatures() {
        let spec = custom();
        let tensor = |name: &str| Tensor {
            name: name.into(),
            datatype: Datatype::Fp64,
            shape: vec![-1],
            optional: false,
        };
        let status = vec![
            VersionStatus {
                name: "v1".into(),
                ..Default::default()
            },
            VersionStatus {
                name: "v2".into(),
                signature: Some(Signature {
                    inputs: vec![tensor("x")],
                    outputs: vec![],
                }),
                descriptions: Some(SignatureDescriptions {
                    operation: Some("Scores.".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ];
        let read = from_status(&status);
        assert_eq!(read.len(), 1);
        // The weighted document: the first version that has docs.
        let (weighted, descriptions) = documented_spec(&spec, &read, None);
        assert_eq!(weighted.signature.as_ref().unwrap().inputs[0].name, "x");
        assert_eq!(descriptions.operation.as_deref(), Some("Scores."));
        // Pinned: each version its own.
        let (v1, _) = documented_spec(&spec, &read, Some("v1"));
        assert!(v1.signature.is_none());
        let (v2, _) = documented_spec(&spec, &read, Some("v2"));
        assert!(v2.signature.is_some());
        // The resource's own signature wins.
        let mut given = spec.clone();
        given.signature = Some(Signature {
            inputs: vec![tensor("y")],
            outputs: vec![],
        });
        let (weighted, descriptions) = documented_spec(&given, &read, Some("v2"));
        assert_eq!(weighted.signature.as_ref().unwrap().inputs[0].name, "y");
        assert!(descriptions.is_empty());
    }
}
