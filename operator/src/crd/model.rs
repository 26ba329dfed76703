//! `Model`: one ML model served through a KEA gateway — its framework, its Open Inference Protocol
//! signature, and its versions (each from a storage URI, a git repository or a ready image) with
//! their share of traffic. The operator builds each version's image, deploys it, and publishes the
//! model through an owned ApiDefinition whose OpenAPI document is generated from the signature.

use super::api::{OperationPolicy, Policies};
use super::gateway::{GatewayResources, PullPolicy};
use super::CommonStatus;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A model served over the Open Inference Protocol behind a KEA gateway.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kea.dev",
    version = "v1alpha1",
    kind = "Model",
    doc = "An ML model served over the Open Inference Protocol behind a KEA gateway: its framework, its tensors (signature), and its versions — each from a storage URI, a git repository or a ready image — with their share of traffic. KEA packages each version into an image with a generated serving class, deploys it, and publishes it with an OpenAPI document generated from the signature that the gateway enforces.",
    namespaced,
    status = "ModelStatus",
    shortname = "kmodel",
    category = "kea",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Framework","type":"string","jsonPath":".spec.framework"}"#,
    printcolumn = r#"{"name":"Versions","type":"string","jsonPath":".status.summary"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ModelSpec {
    /// The framework that reads the model's files; it picks KEA's serving class and runtime image.
    pub framework: Framework,
    /// The model's tensors. Required, except for `onnx` (the file carries them; the runtime
    /// reports them, but the gateway then cannot check requests) and `custom` (read from the
    /// serving class's source by convention: `kea model signature serving.py`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
    /// Versions served side by side; their weights (percent) sum to 100.
    #[schemars(length(min = 1))]
    pub versions: Vec<ModelVersion>,
    /// The GatewayBinding (in this namespace unless `gatewayNamespace` says otherwise).
    #[schemars(length(min = 1))]
    pub gateway: String,
    /// Namespace of the GatewayBinding (default: this one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_namespace: Option<String>,
    /// Host names the model is served on.
    #[schemars(length(min = 1))]
    pub hosts: Vec<String>,
    /// Upstream timeout of an inference request (default `5s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Auth, validation, cache and audit policies, as in an ApiDefinition.
    #[serde(default, flatten)]
    pub policies: Policies,
    /// Policies for some paths only (relative to `/v2/models/<name>`, e.g. `/infer`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operation_policies: Vec<OperationPolicy>,
}

/// Frameworks KEA has a serving class for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Framework {
    /// scikit-learn estimator saved with joblib/pickle (`model.joblib`, `model.pkl`).
    #[default]
    Sklearn,
    /// XGBoost booster (`model.json`, `model.ubj`, `model.bst`).
    Xgboost,
    /// ONNX graph run by onnxruntime (`model.onnx`).
    Onnx,
    /// TorchScript module (`model.pt`).
    Pytorch,
    /// Keras model (`*.keras`) or a TensorFlow SavedModel directory.
    Tensorflow,
    /// The user's own MLRun-style class (`load()`, `predict(body)`), named by `className`.
    Custom,
}

impl Framework {
    pub const ALL: [Framework; 6] = [
        Framework::Sklearn,
        Framework::Xgboost,
        Framework::Onnx,
        Framework::Pytorch,
        Framework::Tensorflow,
        Framework::Custom,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Framework::Sklearn => "sklearn",
            Framework::Xgboost => "xgboost",
            Framework::Onnx => "onnx",
            Framework::Pytorch => "pytorch",
            Framework::Tensorflow => "tensorflow",
            Framework::Custom => "custom",
        }
    }
}

/// A model's inputs and outputs as Open Inference Protocol tensors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Signature {
    #[schemars(length(min = 1))]
    pub inputs: Vec<Tensor>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<Tensor>,
}

/// One tensor: its name, datatype and shape (`-1` for a variable dimension, e.g. the batch).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tensor {
    #[schemars(length(min = 1), regex(pattern = r"^[A-Za-z0-9_.:\-]+$"))]
    pub name: String,
    pub datatype: Datatype,
    /// Dimensions, outermost first; `-1` = any size. Rank 0 (a scalar) is `[]`.
    pub shape: Vec<i64>,
    /// Inputs only: a request may leave this tensor out (default `false`: every input is needed).
    #[serde(default, skip_serializing_if = "is_false")]
    pub optional: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Open Inference Protocol tensor datatypes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Datatype {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp16,
    #[default]
    Fp32,
    Fp64,
    Bytes,
}

impl Datatype {
    pub fn name(self) -> &'static str {
        match self {
            Datatype::Bool => "BOOL",
            Datatype::Uint8 => "UINT8",
            Datatype::Uint16 => "UINT16",
            Datatype::Uint32 => "UINT32",
            Datatype::Uint64 => "UINT64",
            Datatype::Int8 => "INT8",
            Datatype::Int16 => "INT16",
            Datatype::Int32 => "INT32",
            Datatype::Int64 => "INT64",
            Datatype::Fp16 => "FP16",
            Datatype::Fp32 => "FP32",
            Datatype::Fp64 => "FP64",
            Datatype::Bytes => "BYTES",
        }
    }
}

/// One version of the model: where it comes from, its share of traffic and its Pods.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelVersion {
    /// Version label (`v1`, `2024-06`): a DNS label, part of the OIP path
    /// `/v2/models/<model>/versions/<name>` and of the Deployment's name.
    #[schemars(
        length(min = 1, max = 20),
        regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Where the model's files are: `https://…`/`http://…` (a file or a `.tar.gz`/`.zip` archive)
    /// or `pvc://<claim>/<path>`. Exactly one of `storageUri`, `git`, `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_uri: Option<String>,
    /// A git repository holding the model's files (and, for `custom`, its class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitSource>,
    /// A ready serving image (it must serve OIP on port 8080); no image is built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,
    /// Percent of requests (0–100; the versions' weights sum to 100). A single version may omit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100))]
    pub weight: Option<u32>,
    /// Pods of this version (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: Option<i32>,
    /// Requests and limits of the serving container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<GatewayResources>,
    /// `custom` only: the class, as `module.Class` relative to the model's files (e.g.
    /// `serving.Classifier` in `serving.py`); it has `load()` and `predict(body)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"))]
    pub class_name: Option<String>,
    /// Pull policy of the serving image.
    #[serde(default)]
    pub image_pull_policy: PullPolicy,
}

/// A git repository at a revision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitSource {
    /// Clone URL (`https://…`, `git://…`, `http://…`).
    #[schemars(length(min = 1))]
    pub url: String,
    /// Branch, tag or commit (default `HEAD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Directory inside the repository holding the model (default: its root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Conditions: `Accepted`, `ImagesReady`, `VersionsReady`, `Published` and `Ready` (all of them:
/// the gateway serves every version); and `Documented` — whether the published documents describe
/// the tensors (`FromResource`, `FromSource`, `NotNeeded`; False with why a custom serving class
/// declares none) — which is not part of `Ready`: an undocumented model is served with the generic
/// Open Inference Protocol document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelStatus {
    #[serde(flatten)]
    pub common: CommonStatus,
    /// One entry per version in the spec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<VersionStatus>,
    /// `v1 90% 1/1, v2 10% 0/1`: the versions at a glance (printer column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The ApiDefinition that publishes the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_definition: Option<String>,
    /// Where the model's OpenAPI document is (path on the gateway's docs host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openapi_path: Option<String>,
}

/// What one version runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionStatus {
    pub name: String,
    /// The serving image, by digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `Pending`, `Building`, `BuildFailed`, `Deploying`, `Available`, `Failing`.
    pub phase: String,
    #[serde(default)]
    pub ready_replicas: i32,
    #[serde(default)]
    pub replicas: i32,
    /// Why, when not available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The Service in front of this version's Pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// `custom` models without `spec.signature`: the tensors this version's serving class declares,
    /// read from its source by the build Job (the `Documented` condition says why when absent).
    /// The version's pinned OpenAPI document is generated from it, and the model's document from
    /// the first version (in spec order) that has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
    /// Where `signature` was read: `serving.py:12, MLServer class Classifier` (file and line of
    /// the class in the version's files, the convention, the class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_source: Option<String>,
    /// The texts the serving class's docstrings give, for the OpenAPI document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptions: Option<SignatureDescriptions>,
}

/// Texts from a serving class's docstrings; they change nothing in the OpenAPI document but its
/// descriptions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignatureDescriptions {
    /// The class docstring up to its first section: leads the document's `info.description`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `predict`'s summary: the infer operations' `description`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// Per input tensor, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
    /// Per output tensor, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
}
