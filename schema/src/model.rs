//! The parts of an OpenAPI 3.0.x document that validation needs, as typed serde structures.
//! Anything that may be a `$ref` stays a [`Value`] until the compiler resolves it; schema objects
//! stay values and are converted to JSON Schema by [`crate::convert`].

use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
pub struct OpenApi {
    pub openapi: String,
    pub info: Info,
    #[serde(default)]
    pub servers: Vec<Server>,
    pub paths: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Info {
    pub title: String,
    pub version: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Server {
    pub url: String,
    #[serde(default)]
    pub variables: BTreeMap<String, ServerVariable>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerVariable {
    #[serde(default, rename = "enum")]
    pub allowed: Vec<String>,
    pub default: String,
}

/// The HTTP methods a path item may hold, in the specification's order.
pub const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

#[derive(Debug, Clone, Default, Deserialize)]
pub struct PathItem {
    #[serde(default)]
    pub servers: Vec<Server>,
    #[serde(default)]
    pub parameters: Vec<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    #[serde(default)]
    pub operation_id: Option<String>,
    #[serde(default)]
    pub parameters: Vec<Value>,
    #[serde(default)]
    pub request_body: Option<Value>,
    pub responses: Map<String, Value>,
    #[serde(default)]
    pub servers: Vec<Server>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParameterIn {
    Path,
    Query,
    Header,
    Cookie,
}

impl ParameterIn {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Path => "path",
            Self::Query => "query",
            Self::Header => "header",
            Self::Cookie => "cookie",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Style {
    Matrix,
    Label,
    Form,
    Simple,
    SpaceDelimited,
    PipeDelimited,
    DeepObject,
}

impl Style {
    /// The default style of each location (OpenAPI 3.0.3 §4.7.12.4).
    pub fn default_for(location: ParameterIn) -> Self {
        match location {
            ParameterIn::Query | ParameterIn::Cookie => Self::Form,
            ParameterIn::Path | ParameterIn::Header => Self::Simple,
        }
    }

    /// Whether the style may be used in a location.
    pub fn allowed_in(self, location: ParameterIn) -> bool {
        match self {
            Self::Matrix | Self::Label => location == ParameterIn::Path,
            Self::Form => matches!(location, ParameterIn::Query | ParameterIn::Cookie),
            Self::Simple => matches!(location, ParameterIn::Path | ParameterIn::Header),
            Self::SpaceDelimited | Self::PipeDelimited | Self::DeepObject => location == ParameterIn::Query,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Parameter {
    pub name: String,
    #[serde(rename = "in")]
    pub location: ParameterIn,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub allow_empty_value: bool,
    #[serde(default)]
    pub style: Option<Style>,
    #[serde(default)]
    pub explode: Option<bool>,
    #[serde(default)]
    pub schema: Option<Value>,
    #[serde(default)]
    pub content: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RequestBody {
    pub content: Map<String, Value>,
    #[serde(default)]
    pub required: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct MediaType {
    #[serde(default)]
    pub schema: Option<Value>,
    /// Encoding Objects by property name (form bodies), read leniently by the compiler: entries
    /// it does not understand keep the default encoding.
    #[serde(default)]
    pub encoding: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Response {
    #[serde(default)]
    pub content: Map<String, Value>,
}
