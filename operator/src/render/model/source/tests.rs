#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::*;
use crate::crd::{Framework, ModelSpec, ModelVersion};
use crate::render::model::openapi;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn tensor(name: &str, datatype: Datatype, shape: &[i64]) -> Tensor {
    Tensor {
        name: name.into(),
        datatype,
        shape: shape.to_vec(),
        optional: false,
    }
}

fn optional(mut tensor: Tensor) -> Tensor {
    tensor.optional = true;
    tensor
}

/// A file of operator/tests/data/serving-classes (real serving classes; README.md says whose).
fn real(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/serving-classes")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

fn read(source: &str) -> Result<SourceSignature, SourceProblem> {
    read_signature("serving.py", source, None)
}

fn problem(source: &str) -> SourceProblem {
    match read(source) {
        Ok(found) => panic!("expected a problem, read {found:?}"),
        Err(problem) => problem,
    }
}

// ---------------------------------------------------------------------------------------------
// Real serving classes: what each declares, or which convention fails where.

#[test]
fn mlrun_pickle_model_server_declares_no_tensors() {
    let problem = read_signature(
        "pkl_model_server.py",
        &real("mlrun_pkl_model_server.py"),
        Some("PickleModelServer"),
    )
    .unwrap_err();
    assert_eq!(problem.kind, ProblemKind::NoTensors);
    assert_eq!((problem.file.as_str(), problem.line), ("pkl_model_server.py", 37));
    assert!(
        problem.reason.contains("PickleModelServer.predict(self, request) takes the whole request body `request` (MLRun convention)"),
        "{problem}"
    );
    assert!(problem.reason.contains("Inputs:"), "{problem}");
    // Without a class name, the file's only serving class is found by convention.
    assert_eq!(read(&real("mlrun_pkl_model_server.py")).unwrap_err().line, 37);
}

#[test]
fn mlrun_class_with_its_tensors_documented() {
    // The real class, with the docstring section the problem asks for added to predict.
    let source = real("mlrun_pkl_model_server.py").replace(
        "        :return: The model's prediction on the given input.\n        \"\"\"",
        "        :return: The model's prediction on the given input.\n\n        Inputs:\n            inputs (FP64[-1, 2]): feature rows.\n        Outputs:\n            predict (INT64[-1]): one class per row.\n        \"\"\"",
    );
    let found = read(&source).unwrap();
    assert_eq!(found.class_name, "PickleModelServer");
    assert_eq!(found.convention, Convention::MlRun);
    assert_eq!(
        found.signature,
        Signature {
            inputs: vec![tensor("inputs", Datatype::Fp64, &[-1, 2])],
            outputs: vec![tensor("predict", Datatype::Int64, &[-1])],
        }
    );
    assert_eq!(
        found.descriptions.model.as_deref(),
        Some("Model serving class, inheriting the V2ModelServer class for being initialized automatically by the model server and be able to run locally as part of a nuclio serverless function, or as part of a real-time pipeline.")
    );
    assert_eq!(
        found.descriptions.operation.as_deref(),
        Some("Infer the inputs through the model using MLRun's PyTorch interface and return its output. The inferred data will be read from the \"inputs\" key of the request.")
    );
    assert_eq!(found.descriptions.inputs["inputs"], "feature rows.");
}

#[test]
fn kserve_custom_model_points_at_preprocess() {
    let problem = read_signature(
        "model.py",
        &real("kserve_custom_model.py"),
        Some("model.AlexNetModel"),
    )
    .unwrap_err();
    assert_eq!(problem.kind, ProblemKind::NoTensors);
    assert_eq!(problem.line, 58);
    assert!(
        problem
            .reason
            .contains("AlexNetModel.preprocess(self, payload, headers) takes the whole request `payload` (KServe convention)"),
        "{problem}"
    );
    // Declared with the decorator on the class instead, as KServe's v2 example sends it.
    let source = real("kserve_custom_model.py").replace(
        "class AlexNetModel(Model):",
        "import kea_runtime\n\n\n@kea_runtime.tensors(\n    inputs=[{\"name\": \"image\", \"datatype\": \"BYTES\", \"shape\": [1], \"description\": \"a base64 JPEG\"}],\n    outputs=[\"output-0 (FP32[1, 5]): the top 5 scores\"],\n)\nclass AlexNetModel(Model):",
    );
    let found = read(&source).unwrap();
    assert_eq!(found.convention, Convention::KServe);
    assert_eq!(
        found.signature,
        Signature {
            inputs: vec![tensor("image", Datatype::Bytes, &[1])],
            outputs: vec![tensor("output-0", Datatype::Fp32, &[1, 5])],
        }
    );
    assert_eq!(found.descriptions.inputs["image"], "a base64 JPEG");
    assert_eq!(found.descriptions.outputs["output-0"], "the top 5 scores");
}

#[test]
fn mlserver_decode_args_examples() {
    // np.ndarray: neither datatype nor shape.
    let problem = read(&real("mlserver_cassava_serve_model.py")).unwrap_err();
    assert_eq!((problem.kind, problem.line), (ProblemKind::UnknownDatatype, 20));
    assert!(
        problem.reason.starts_with("input `payload` of predict (MLServer @decode_args): `np.ndarray` says neither its datatype nor its shape"),
        "{problem}"
    );
    let problem = read(&real("mlserver_numpyro_models.py")).unwrap_err();
    assert_eq!((problem.kind, problem.line), (ProblemKind::UnknownDatatype, 31));
    assert!(problem.reason.contains("input `marriage`"), "{problem}");
    // List[str] inputs are read; the np.ndarray output is not.
    for (file, line) in [
        ("mlserver_getting_started_my_model.py", 15),
        ("mlserver_custom_runtime_simplified.py", 13),
    ] {
        let problem = read(&real(file)).unwrap_err();
        assert_eq!(
            (problem.kind, problem.line),
            (ProblemKind::UnknownDatatype, line),
            "{file}"
        );
        assert!(problem.reason.contains("output `output-0`"), "{problem}");
    }
    // The fix the problem names: the output in predict's docstring.
    let source = real("mlserver_custom_runtime_simplified.py").replace(
        "  async def predict(self, questions: List[str], context: List[str]) -> np.ndarray:\n",
        "  async def predict(self, questions: List[str], context: List[str]) -> np.ndarray:\n    \"\"\"Answers questions.\n\n    Inputs:\n      context: one context per question.\n    Outputs:\n      output-0 (FP32[-1]): one score per question.\n    \"\"\"\n",
    );
    let found = read(&source).unwrap();
    assert_eq!(found.class_name, "MyCustomRuntime");
    assert_eq!(found.convention, Convention::MlServer);
    assert_eq!(
        found.signature,
        Signature {
            inputs: vec![
                tensor("questions", Datatype::Bytes, &[-1]),
                tensor("context", Datatype::Bytes, &[-1]),
            ],
            outputs: vec![tensor("output-0", Datatype::Fp32, &[-1])],
        }
    );
    assert_eq!(
        found.descriptions.operation.as_deref(),
        Some("Answers questions.")
    );
    assert_eq!(found.descriptions.inputs["context"], "one context per question.");
    assert!(!found.descriptions.inputs.contains_key("questions"));
    // The numpyro example: optional inputs (defaults), typed in the docstring.
    let source = real("mlserver_numpyro_models.py").replace(
        "    ) -> np.ndarray:\n",
        "    ) -> np.ndarray:\n        \"\"\"Inputs:\n            marriage (FP64[-1]): marriage rate.\n            age (FP64[-1]): median age at marriage.\n            divorce (FP64[-1]): divorce rate.\n        Outputs:\n            output-0 (FP64[]): the mean prediction.\n        \"\"\"\n",
    );
    let problem = read(&source).unwrap_err();
    assert_eq!(problem.kind, ProblemKind::InvalidSignature);
    assert!(problem.reason.contains("every input is optional"), "{problem}");
    let source = source.replace("marriage: Optional[np.ndarray] = None,", "marriage: np.ndarray,");
    let found = read(&source).unwrap();
    assert_eq!(
        found.signature.inputs,
        vec![
            tensor("marriage", Datatype::Fp64, &[-1]),
            optional(tensor("age", Datatype::Fp64, &[-1])),
            optional(tensor("divorce", Datatype::Fp64, &[-1])),
        ]
    );
    assert_eq!(
        found.signature.outputs,
        vec![tensor("output-0", Datatype::Fp64, &[])]
    );
}

#[test]
fn mlserver_inference_request_without_decode_args() {
    let problem = read(&real("mlserver_sum_model.py")).unwrap_err();
    assert_eq!((problem.kind, problem.line), (ProblemKind::NoTensors, 5));
    assert!(
        problem.reason.contains("SumModel.predict(self, payload) takes the whole InferenceRequest `payload` (MLServer convention) and is not decorated with @decode_args"),
        "{problem}"
    );
}

// ---------------------------------------------------------------------------------------------
// The documented forms.

const IRIS: &str = r#"
import joblib
import numpy as np


class Classifier:
    """Iris classifier.

    A decision tree trained on Fisher's iris data.

    Attributes:
        model: the estimator.
    """

    def load(self):
        self.model = joblib.load("model.joblib")

    def predict(self, body):
        """Classifies iris flowers.

        More text that is not the summary.

        Inputs:
            measurements (FP32[-1, 4]): sepal and petal lengths
                and widths, in cm.
            scale (fp32[1], optional): a unit factor.
        Outputs:
            species (INT64[-1]): the predicted class.
            proba (FP64[-1, 3]):
        """
        return self.model.predict(np.asarray(body["inputs"]))
"#;

#[test]
fn the_docstring_form() {
    let found = read(IRIS).unwrap();
    assert_eq!(
        (found.class_name.as_str(), found.line, found.convention),
        ("Classifier", 6, Convention::MlRun)
    );
    assert_eq!(
        found.signature,
        Signature {
            inputs: vec![
                tensor("measurements", Datatype::Fp32, &[-1, 4]),
                optional(tensor("scale", Datatype::Fp32, &[1])),
            ],
            outputs: vec![
                tensor("species", Datatype::Int64, &[-1]),
                tensor("proba", Datatype::Fp64, &[-1, 3]),
            ],
        }
    );
    let descriptions = &found.descriptions;
    assert_eq!(
        descriptions.model.as_deref(),
        Some("Iris classifier.\n\nA decision tree trained on Fisher's iris data.")
    );
    assert_eq!(
        descriptions.operation.as_deref(),
        Some("Classifies iris flowers.")
    );
    assert_eq!(
        descriptions.inputs["measurements"],
        "sepal and petal lengths and widths, in cm."
    );
    assert_eq!(descriptions.inputs["scale"], "a unit factor.");
    assert_eq!(descriptions.outputs["species"], "the predicted class.");
    assert!(!descriptions.outputs.contains_key("proba"));
}

#[test]
fn malformed_docstring_lines_are_named() {
    let cases = [
        (
            "            measurements FP32[-1, 4]: lengths",
            "measurements (FP32[-1, 4]): sepal and petal lengths and widths",
            24,
            "expected `name (DATATYPE[shape]): description`",
        ),
        (
            "            measurements (FLOAT32[-1, 4]): lengths",
            "measurements (FP32[-1, 4]): sepal and petal lengths and widths",
            24,
            "`FLOAT32` is not an Open Inference Protocol datatype",
        ),
        (
            "            measurements (FP32): lengths",
            "measurements (FP32[-1, 4]): sepal and petal lengths and widths",
            24,
            "gives no shape",
        ),
        (
            "            measurements (FP32[-1, 0]): lengths",
            "measurements (FP32[-1, 4]): sepal and petal lengths and widths",
            24,
            "0 in the shape [-1, 0] is not a dimension",
        ),
        (
            "            measurements (FP32[-1, 4], required): lengths",
            "measurements (FP32[-1, 4]): sepal and petal lengths and widths",
            24,
            "only `, optional` may follow",
        ),
        (
            "            species: the class.",
            "species (INT64[-1]): the predicted class.",
            28,
            "gives no datatype and shape",
        ),
    ];
    for (line, replaced, at, why) in cases {
        let original = IRIS
            .lines()
            .find(|text| text.trim().starts_with(replaced.split(' ').next().unwrap()) && text.contains('('))
            .unwrap();
        let source = IRIS.replacen(original, line, 1);
        assert_ne!(source, IRIS);
        let problem = problem(&source);
        assert_eq!(problem.line, at, "{problem}");
        assert!(
            matches!(problem.kind, ProblemKind::MalformedDocstring),
            "{problem}"
        );
        assert!(problem.reason.contains(why), "{problem}");
    }
    // A section without entries, and a section given twice.
    let problem = problem(&IRIS.replace("        Outputs:\n            species (INT64[-1]): the predicted class.\n            proba (FP64[-1, 3]):\n", "        Outputs:\n\n"));
    assert_eq!(
        (problem.kind, problem.line),
        (ProblemKind::MalformedDocstring, 27)
    );
    let problem = problem_of(&IRIS.replace(
        "        Outputs:\n",
        "        Inputs:\n            x (FP32[1]): x.\n        Outputs:\n",
    ));
    assert!(problem.reason.contains("a second Inputs: section"), "{problem}");
}

fn problem_of(source: &str) -> SourceProblem {
    problem(source)
}

#[test]
fn the_decorator_form_wins_and_takes_docstring_descriptions() {
    let source = r#"
from kea_runtime import tensors as declare


class Scorer:
    def load(self):
        pass

    @declare(
        inputs=[
            {"name": "x", "datatype": "fp64", "shape": (-1, 3), "optional": False},
            {"name": "mask", "datatype": "BOOL", "shape": [-1, 3], "optional": True, "description": "which values count"},
        ],
        outputs=["score (FP64[-1]): the score"],
    )
    def predict(self, body):
        """Scores rows.

        Inputs:
            x (INT8[1]): the rows to score.
        """
        return []
"#;
    let found = read(source).unwrap();
    assert_eq!(
        found.signature,
        Signature {
            inputs: vec![
                tensor("x", Datatype::Fp64, &[-1, 3]),
                optional(tensor("mask", Datatype::Bool, &[-1, 3])),
            ],
            outputs: vec![tensor("score", Datatype::Fp64, &[-1])],
        }
    );
    assert_eq!(found.descriptions.inputs["x"], "the rows to score.");
    assert_eq!(found.descriptions.inputs["mask"], "which values count");
    assert_eq!(found.descriptions.outputs["score"], "the score");

    let bad = [
        (
            "outputs=[\"score (FP64[-1]): the score\"],",
            "outputs=OUTPUTS,",
            14,
            "literal lists",
        ),
        (
            "\"datatype\": \"BOOL\"",
            "\"datatype\": \"BOOLEAN\"",
            12,
            "`BOOLEAN` is not an Open Inference Protocol datatype",
        ),
        (
            "\"shape\": (-1, 3)",
            "\"shape\": (-1, 0)",
            11,
            "at most 8 dimensions, each a positive size or -1",
        ),
        (
            "\"optional\": False}",
            "\"optional\": False, \"dtype\": 1}",
            11,
            "unknown key `dtype`",
        ),
        (
            "outputs=[\"score (FP64[-1]): the score\"],",
            "outputs=[\"score: the score\"],",
            14,
            "gives no datatype and shape",
        ),
        (
            "outputs=[\"score (FP64[-1]): the score\"],",
            "shapes=[],",
            14,
            "has no argument `shapes`",
        ),
    ];
    for (from, to, line, why) in bad {
        let source = source.replacen(from, to, 1);
        let problem = problem(&source);
        assert_eq!(
            (problem.kind, problem.line),
            (ProblemKind::MalformedDecorator, line),
            "{problem}"
        );
        assert!(problem.reason.contains(why), "{problem}");
    }
    // Another decorator named `tensors` is not KEA's: the docstring declares the tensors.
    let other = source.replace(
        "from kea_runtime import tensors as declare",
        "from elsewhere import tensors as declare",
    );
    let found = read(&other).unwrap();
    assert_eq!(found.signature.inputs, vec![tensor("x", Datatype::Int8, &[1])]);
    assert!(found.signature.outputs.is_empty());
}

#[test]
fn mlserver_type_hints_defaults_and_tuples() {
    let source = r#"
from typing import List, Optional, Tuple

import mlserver
from mlserver.codecs import decode_args


class Qa(mlserver.MLModel):
    """Answers questions."""

    @decode_args
    async def predict(
        self,
        questions: List[str],
        ids: list[int],
        weights: Optional[List[float]] = None,
        flags: List[bool] | None = None,
    ) -> Tuple[List[str], List[float]]:
        ...
"#;
    let found = read(source).unwrap();
    assert_eq!(found.convention, Convention::MlServer);
    assert_eq!(
        found.signature,
        Signature {
            inputs: vec![
                tensor("questions", Datatype::Bytes, &[-1]),
                tensor("ids", Datatype::Int64, &[-1]),
                optional(tensor("weights", Datatype::Fp64, &[-1])),
                optional(tensor("flags", Datatype::Bool, &[-1])),
            ],
            outputs: vec![
                tensor("output-0", Datatype::Bytes, &[-1, 1]),
                tensor("output-1", Datatype::Fp64, &[-1]),
            ],
        }
    );
    assert_eq!(found.descriptions.model.as_deref(), Some("Answers questions."));
    // A hint that is no tensor, and docstring names that are no parameters or outputs.
    let problem = problem(&source.replace("ids: list[int],", "ids: int,"));
    assert_eq!((problem.kind, problem.line), (ProblemKind::UnknownDatatype, 15));
    assert!(
        problem
            .reason
            .contains("`int` is not a type @decode_args decodes"),
        "{problem}"
    );
    let problem = problem_of(&source.replace(
        "        ...\n",
        "        \"\"\"Inputs:\n            question: typo.\n        \"\"\"\n",
    ));
    assert_eq!(
        (problem.kind, problem.line),
        (ProblemKind::MalformedDocstring, 20)
    );
    let problem = problem_of(&source.replace(
        "        ...\n",
        "        \"\"\"Outputs:\n            answer (BYTES[-1]): no.\n        \"\"\"\n",
    ));
    assert!(
        problem.reason.contains("names the outputs output-0, output-1"),
        "{problem}"
    );
    let problem = problem_of(&source.replace("ids: list[int],", "frame: pd.DataFrame,"));
    assert!(
        problem.reason.contains("several inputs as its columns"),
        "{problem}"
    );
}

// ---------------------------------------------------------------------------------------------
// Finding the class.

#[test]
fn classes_are_found_by_name_or_convention() {
    let two = format!("{IRIS}\n\nclass Other(Classifier):\n    pass\n");
    let problem = problem(&two);
    assert_eq!(
        (problem.kind, problem.line),
        (ProblemKind::SeveralServingClasses, 34)
    );
    assert!(
        problem.reason.contains("Classifier (line 6), Other (line 34)"),
        "{problem}"
    );
    // By name (`module.Class` as className gives it); an inherited predict counts.
    let found = read_signature("serving.py", &two, Some("serving.Other")).unwrap();
    assert_eq!((found.class_name.as_str(), found.line), ("Other", 34));
    assert_eq!(found.signature.inputs[0].name, "measurements");
    let problem = read_signature("serving.py", &two, Some("serving.Missing")).unwrap_err();
    assert_eq!((problem.kind, problem.line), (ProblemKind::ClassNotFound, 1));
    assert!(
        problem
            .reason
            .contains("no class Missing in this file (it defines Classifier (line 6), Other (line 34))"),
        "{problem}"
    );

    let problem = problem_of("import os\n\ndef predict(body):\n    return body\n");
    assert_eq!((problem.kind, problem.line), (ProblemKind::NoServingClass, 1));
    let problem = read_signature(
        "serving.py",
        "class Loader:\n    def load(self):\n        pass\n",
        Some("Loader"),
    )
    .unwrap_err();
    assert_eq!((problem.kind, problem.line), (ProblemKind::NoPredict, 1));
    assert!(
        problem.reason.contains("class Loader has no predict method"),
        "{problem}"
    );

    assert_eq!(
        module_files("serving.Classifier").unwrap(),
        vec![
            std::path::PathBuf::from("serving.py"),
            std::path::PathBuf::from("serving/__init__.py")
        ]
    );
    assert_eq!(
        module_files("pkg.mod.C").unwrap(),
        vec![
            std::path::PathBuf::from("pkg/mod.py"),
            std::path::PathBuf::from("pkg/mod/__init__.py")
        ]
    );
    assert!(module_files("Classifier").is_none());
    assert!(module_files("../etc.C").is_none());
}

// ---------------------------------------------------------------------------------------------
// Broken and hostile input.

#[test]
fn syntax_errors_name_their_line() {
    let problem = problem_of("class A:\n    def predict(self, body):\n        return [\n\nx = 1 +\n");
    assert_eq!(problem.kind, ProblemKind::SyntaxError);
    assert!(problem.line >= 3, "{problem}");
    assert!(problem.reason.starts_with("syntax error: "), "{problem}");
    let problem = problem_of("class A:\n    def predict(self, body)\n        return 1\n");
    assert_eq!((problem.kind, problem.line), (ProblemKind::SyntaxError, 2));
    assert_eq!(problem.to_string(), format!("serving.py:2: {}", problem.reason));
    // Python 2 is not Python 3.
    assert_eq!(problem_of("print 'hello'\n").kind, ProblemKind::SyntaxError);
}

#[test]
fn hostile_input_is_bounded() {
    let deadline = Duration::from_secs(20);
    let budget = MAX_SOURCE_BYTES - 64;
    let deep = [
        format!("x = {}1\n", "-".repeat(budget)),
        format!("x = {}1{}\n", "[".repeat(budget / 2), "]".repeat(budget / 2)),
        format!("x = 1{}\n", "+1".repeat(budget / 2)),
        format!("x = a{}\n", ".b".repeat(budget / 2)),
        format!("x = {}1\n", "not ".repeat(budget / 4)),
        format!("x = f{}\n", "()".repeat(budget / 2)),
        format!("x = {}1{}\n", "{1:".repeat(budget / 4), "}".repeat(budget / 4)),
        format!("x = {}", "(".repeat(budget)),
        (0..200)
            .map(|depth| format!("{}if x:\n", " ".repeat(depth)))
            .collect::<String>()
            + &" ".repeat(200)
            + "pass\n",
    ];
    for source in deep {
        let started = Instant::now();
        let problem = problem(&source);
        assert!(
            matches!(
                problem.kind,
                ProblemKind::NoServingClass | ProblemKind::SyntaxError
            ),
            "{problem}"
        );
        assert!(started.elapsed() < deadline, "{:?}", started.elapsed());
    }
    let huge = "#".repeat(MAX_SOURCE_BYTES + 1);
    assert_eq!(problem_of(&huge).kind, ProblemKind::SourceTooLarge);
    // Many classes, long lists, long docstrings: linear.
    let many: String = (0..2_000)
        .map(|index| format!("class C{index}:\n    def predict(self, body):\n        \"\"\"Inputs:\n            x{index} (FP32[-1]): {}\n        \"\"\"\n", "y".repeat(100)))
        .collect();
    let started = Instant::now();
    let problem = problem(&many);
    assert_eq!(problem.kind, ProblemKind::SeveralServingClasses);
    assert!(started.elapsed() < deadline);
    let found = read_signature("serving.py", &many, Some("C1999")).unwrap();
    assert_eq!(found.signature.inputs[0].name, "x1999");
    // A cycle of base classes, and non-UTF-8-looking but valid text.
    let problem = read_signature(
        "serving.py",
        "class A(B):\n    pass\nclass B(A):\n    pass\n",
        Some("A"),
    )
    .unwrap_err();
    assert_eq!(problem.kind, ProblemKind::NoPredict);
    let problem = problem_of("class \u{1F600}:\n    pass\n");
    assert_eq!(problem.kind, ProblemKind::SyntaxError);
    // More tensors than a model may declare.
    let entries: String = (0..300)
        .map(|index| format!("            x{index} (FP32[1]): x.\n"))
        .collect();
    let problem = problem_of(&format!(
        "class A:\n    def predict(self, body):\n        \"\"\"Inputs:\n{entries}        \"\"\"\n"
    ));
    assert_eq!((problem.kind, problem.line), (ProblemKind::InvalidSignature, 4));
}

// ---------------------------------------------------------------------------------------------
// The generated document.

/// JSON pointers of the leaves where two documents differ.
fn differences(left: &Value, right: &Value, at: String, found: &mut Vec<String>) {
    match (left, right) {
        (Value::Object(left), Value::Object(right)) => {
            for key in left
                .keys()
                .chain(right.keys().filter(|key| !left.contains_key(*key)))
            {
                let pointer = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                differences(
                    left.get(key).unwrap_or(&Value::Null),
                    right.get(key).unwrap_or(&Value::Null),
                    pointer,
                    found,
                );
            }
        }
        (Value::Array(left), Value::Array(right)) if left.len() == right.len() => {
            for (index, (left, right)) in left.iter().zip(right).enumerate() {
                differences(left, right, format!("{at}/{index}"), found);
            }
        }
        _ if left != right => found.push(at),
        _ => {}
    }
}

#[test]
fn the_document_from_source_is_the_resources_plus_descriptions() {
    let found = read(IRIS).unwrap();
    let spec = |signature: Option<Signature>| ModelSpec {
        framework: Framework::Custom,
        signature,
        versions: vec![ModelVersion {
            name: "v1".into(),
            class_name: Some("serving.Classifier".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let from_resource = openapi::document("iris", &spec(Some(found.signature.clone())));
    let from_source =
        openapi::described_document("iris", &spec(Some(found.signature.clone())), &found.descriptions);
    let mut found_pointers = Vec::new();
    differences(&from_resource, &from_source, String::new(), &mut found_pointers);
    found_pointers.sort();
    assert_eq!(
        found_pointers,
        [
            "/components/schemas/Input0/description",
            "/components/schemas/Input1/description",
            "/components/schemas/Output0/description",
            "/info/description",
            "/paths/~1infer/post/description",
            "/paths/~1versions~1v1~1infer/post/description",
        ]
    );
    let schemas = &from_source["components"]["schemas"];
    assert_eq!(
        schemas["Input0"]["description"],
        "Tensor `measurements`: FP32 of shape [-1, 4]. sepal and petal lengths and widths, in cm."
    );
    assert_eq!(
        schemas["Input1"]["description"],
        "Tensor `scale` (optional): FP32 of shape [1]. a unit factor."
    );
    assert!(from_source["info"]["description"]
        .as_str()
        .unwrap()
        .starts_with("Iris classifier.\n\nA decision tree trained on Fisher's iris data.\n\nOpen Inference Protocol (REST) endpoints"));
    assert_eq!(
        from_source["paths"]["/infer"]["post"]["description"],
        "Classifies iris flowers."
    );
    // The optional input may be left out; the required one may not.
    let inputs = &schemas["InferenceRequest"]["properties"]["inputs"];
    assert_eq!(
        (inputs["minItems"].clone(), inputs["maxItems"].clone()),
        (json!(1), json!(2))
    );
    let bundle = kea_schema::Bundle::compile(&kea_schema::Sources::single("iris", from_source)).unwrap();
    let api = kea_schema::Api::compile(&bundle).unwrap();
    let (id, _) = api.route("POST", "/v2/models/iris/infer").unwrap();
    let check =
        |body: Value| api.check_body(id, Some("application/json"), body.to_string().as_bytes(), 1 << 20);
    let measurements =
        json!({"name": "measurements", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]});
    let scale = json!({"name": "scale", "datatype": "FP32", "shape": [1], "data": [1.0]});
    assert!(check(json!({"inputs": [measurements]})).is_ok());
    assert!(check(json!({"inputs": [measurements, scale]})).is_ok());
    assert!(check(json!({"inputs": []})).is_err());
}
