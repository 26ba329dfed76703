//! KEA's schema core: OpenAPI 3.0 documents compiled into bundles and checked against requests.
//!
//! - [`sources`] loads documents (JSON, YAML) and resolves `$ref`s between them;
//! - [`bundle`] compiles a document into a [`Bundle`]: operations, JSON Schemas ([`convert`]),
//!   a sha256, in a versioned JSON format the validate plugin loads without YAML;
//! - [`validator`] turns a bundle into an [`Api`] that routes requests ([`routes`]) and checks
//!   parameters ([`params`]) and bodies ([`json`]) with JSON Schema validators that share each
//!   definition, compiled once ([`compile`]).
//!
//! Host-free: it builds natively, for `wasm32-wasip1` (the plugin) and for `wasm32-unknown-unknown`
//! (the browser validator, `web/validator`).

pub mod bundle;
pub mod compile;
pub mod convert;
pub mod error;
pub mod json;
pub mod model;
pub mod params;
pub mod routes;
pub mod sources;
pub mod validator;
#[cfg(feature = "yaml")]
mod yaml;

pub use bundle::{Bundle, BundleError};
pub use error::DocumentError;
pub use routes::RouteMatch;
pub use sources::Sources;
pub use validator::{Api, BodyRejection, CompileError, In, Issue, OperationId};

/// Compiles one document (JSON or YAML text) into a bundle.
pub fn compile_document(name: &str, bytes: &[u8]) -> Result<Bundle, DocumentError> {
    let document = sources::parse_document(name, bytes)?;
    Bundle::compile(&Sources::single(name, document))
}
