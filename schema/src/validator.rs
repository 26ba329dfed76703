//! A bundle made ready to check requests: route table plus one compiled JSON Schema validator per
//! parameter and media type. Checks return every problem found (capped by the caller), each with
//! where it is (`in` + parameter name or JSON pointer) and what is wrong.

use crate::bundle::{essence, is_json, Bundle, EncodingSpec, MediaSpec, ParameterSpec, FORM};
use crate::compile::{located, Compiler, Definitions};
use crate::model::ParameterIn;
use crate::params::{
    cookie_pairs, query_pairs, read_form, read_query, read_simple, QueryValue, ReadError, Shape,
};
use crate::routes::{RouteMatch, RouteTable, Template};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Where a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum In {
    Path,
    Query,
    Header,
    Cookie,
    Body,
}

impl From<ParameterIn> for In {
    fn from(location: ParameterIn) -> Self {
        match location {
            ParameterIn::Path => Self::Path,
            ParameterIn::Query => Self::Query,
            ParameterIn::Header => Self::Header,
            ParameterIn::Cookie => Self::Cookie,
        }
    }
}

/// One problem with a request or response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    #[serde(rename = "in")]
    pub location: In,
    /// The parameter's name (not for bodies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// JSON pointer inside the value; `""` is the whole value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    pub message: String,
}

impl Issue {
    fn parameter(spec: &ParameterSpec, pointer: Option<String>, message: impl Into<String>) -> Self {
        Self {
            location: spec.location.into(),
            name: Some(spec.name.clone()),
            pointer,
            message: message.into(),
        }
    }

    fn body(pointer: &str, message: impl Into<String>) -> Self {
        Self {
            location: In::Body,
            name: None,
            pointer: Some(pointer.to_string()),
            message: message.into(),
        }
    }
}

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyRejection {
    /// 400: missing, unreadable or not matching its schema.
    Invalid(Vec<Issue>),
    /// 415: the operation takes none of this media type; the ones it takes.
    UnsupportedMediaType { allowed: Vec<String> },
}

/// Why a compiled schema could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} {what}: {reason}")]
pub struct CompileError {
    pub operation: String,
    pub what: String,
    pub reason: String,
}

/// The shape of parameters without a schema: text stays text.
const ANY: Shape = Shape::ANY;

struct Checker {
    validator: jsonschema::Validator,
    shape: Shape,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("shape", &self.shape)
            .finish_non_exhaustive()
    }
}

impl Checker {
    /// `definitions` is `None` for values that arrive as JSON and are never read from text: their
    /// shape is not needed, and on large documents shapes (which follow references) add up.
    fn new(
        schema: &Value,
        compiler: &Compiler,
        definitions: Option<&BTreeMap<String, Value>>,
    ) -> Result<Self, String> {
        Ok(Self {
            validator: compiler.build(schema)?,
            shape: definitions.map_or(ANY, |definitions| Shape::of(schema, definitions)),
        })
    }

    /// Problems of `value`, at most `limit`; `issue` builds each from (pointer, message).
    fn check(
        &self,
        value: &Value,
        limit: usize,
        issue: impl Fn(String, String) -> Issue,
        out: &mut Vec<Issue>,
    ) {
        if self.validator.is_valid(value) {
            return;
        }
        for error in self.validator.iter_errors(value) {
            if out.len() >= limit {
                break;
            }
            let (pointer, mut message) = located(&error);
            if message == "False schema does not allow value" {
                // The only `false` schemas are the properties convert.rs hides per direction.
                message =
                    "must not be sent: readOnly properties are for responses, writeOnly ones for requests"
                        .into();
            }
            out.push(issue(pointer, message));
        }
    }
}

#[derive(Debug)]
struct Parameter {
    spec: ParameterSpec,
    checker: Option<Checker>,
}

#[derive(Debug)]
struct Media {
    media_type: String,
    checker: Option<Checker>,
    /// Form bodies: how properties are written, where not the default.
    encoding: BTreeMap<String, EncodingSpec>,
}

#[derive(Debug)]
struct Operation {
    label: String,
    parameters: Vec<Parameter>,
    body: Option<(bool, Vec<Media>)>,
    responses: BTreeMap<String, Vec<Media>>,
}

/// A bundle compiled for validation.
#[derive(Debug)]
pub struct Api {
    pub title: String,
    pub version: String,
    pub sha256: String,
    routes: RouteTable,
    operations: Vec<Operation>,
    /// The compiled definitions the operations' validators refer to.
    _definitions: Definitions,
}

/// Handle to one operation of an [`Api`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationId(usize);

impl Api {
    /// Compiles every schema of `bundle`; errors name the operation and the schema.
    pub fn compile(bundle: &Bundle) -> Result<Self, CompileError> {
        log::debug!("compiling validators of bundle {}", bundle.sha256);
        let (compiler, definitions) = Compiler::new(&bundle.definitions).map_err(|reason| CompileError {
            operation: "components".into(),
            what: "schema".into(),
            reason,
        })?;
        let mut operations = Vec::new();
        let mut templates = Vec::new();
        for (index, spec) in bundle.operations.iter().enumerate() {
            let label = format!("{} {}", spec.method, spec.path);
            let fail = |what: String, reason: String| CompileError {
                operation: label.clone(),
                what,
                reason,
            };
            let mut parameters = Vec::new();
            for parameter in &spec.parameters {
                let checker = match &parameter.schema {
                    Some(schema) => Some(
                        Checker::new(schema, &compiler, Some(&bundle.definitions)).map_err(|e| {
                            fail(
                                format!("{} parameter {:?}", parameter.location.as_str(), parameter.name),
                                e,
                            )
                        })?,
                    ),
                    None => None,
                };
                parameters.push(Parameter {
                    spec: parameter.clone(),
                    checker,
                });
            }
            let compile_media = |content: &[MediaSpec], what: &str| -> Result<Vec<Media>, CompileError> {
                content
                    .iter()
                    .map(|media| {
                        let checker = match &media.schema {
                            Some(schema) => Some(
                                // Only form bodies are read from text into the schema's shape.
                                Checker::new(
                                    schema,
                                    &compiler,
                                    (media.media_type == FORM).then_some(&bundle.definitions),
                                )
                                .map_err(|e| fail(format!("{what} {}", media.media_type), e))?,
                            ),
                            None => None,
                        };
                        Ok(Media {
                            media_type: media.media_type.clone(),
                            checker,
                            encoding: media.encoding.clone(),
                        })
                    })
                    .collect()
            };
            let body = match &spec.body {
                Some(body) => Some((body.required, compile_media(&body.content, "request body")?)),
                None => None,
            };
            let mut responses = BTreeMap::new();
            for (status, content) in &spec.responses {
                responses.insert(
                    status.clone(),
                    compile_media(content, &format!("response {status}"))?,
                );
            }
            for base in &spec.base_paths {
                let template =
                    Template::parse(&format!("{base}{}", spec.path)).map_err(|e| fail("path".into(), e))?;
                templates.push((spec.method.clone(), template, index));
                // Path `/` under a base path also serves the base path itself (`/v1` as `/v1/`):
                // resources addressed by the base path (an OIP model's metadata at
                // `/v2/models/<name>`) have no other way to be described.
                if spec.path == "/" && !base.is_empty() && base != "/" {
                    let bare = Template::parse(base).map_err(|e| fail("path".into(), e))?;
                    templates.push((spec.method.clone(), bare, index));
                }
            }
            operations.push(Operation {
                label,
                parameters,
                body,
                responses,
            });
        }
        Ok(Self {
            title: bundle.title.clone(),
            version: bundle.version.clone(),
            sha256: bundle.sha256.clone(),
            routes: RouteTable::new(&templates),
            operations,
            _definitions: definitions,
        })
    }

    /// The operation for a request (path without query string).
    pub fn route(
        &self,
        method: &str,
        path: &str,
    ) -> Result<(OperationId, Vec<(String, String)>), RouteMatch> {
        match self.routes.find(method, path) {
            RouteMatch::Found { operation, params } => Ok((OperationId(operation), params)),
            other => Err(other),
        }
    }

    fn operation(&self, id: OperationId) -> Option<&Operation> {
        self.operations.get(id.0)
    }

    /// `GET /pets/{id}`, for logs.
    pub fn label(&self, id: OperationId) -> &str {
        self.operation(id).map_or("", |o| o.label.as_str())
    }

    /// Whether the operation takes a request body (which must then be read before deciding).
    pub fn takes_body(&self, id: OperationId) -> bool {
        self.operation(id).is_some_and(|o| o.body.is_some())
    }

    /// Checks path, query, header and cookie parameters. `header` looks a header up by lower-case name.
    pub fn check_parameters(
        &self,
        id: OperationId,
        path_params: &[(String, String)],
        query: Option<&str>,
        header: impl Fn(&str) -> Option<String>,
        limit: usize,
    ) -> Vec<Issue> {
        let mut issues = Vec::new();
        let Some(operation) = self.operation(id) else {
            return issues;
        };
        let pairs = query.map(query_pairs).unwrap_or_default();
        // Headers are looked up only for the parameters that need them (each is a host call).
        let has_cookies = operation
            .parameters
            .iter()
            .any(|p| p.spec.location == ParameterIn::Cookie);
        let cookies = if has_cookies {
            header("cookie").map(|c| cookie_pairs(&c)).unwrap_or_default()
        } else {
            Vec::new()
        };
        for parameter in &operation.parameters {
            if issues.len() >= limit {
                break;
            }
            let spec = &parameter.spec;
            let shape = parameter.checker.as_ref().map_or(&ANY, |c| &c.shape);
            let value = match spec.location {
                ParameterIn::Query => match read_query(spec, shape, &pairs) {
                    Ok(QueryValue::Absent) => None,
                    Ok(QueryValue::AllowedEmpty) => continue,
                    Ok(QueryValue::Present(value)) => Some(Ok(value)),
                    Err(reason) => Some(Err(reason)),
                },
                ParameterIn::Path => path_params
                    .iter()
                    .find(|(n, _)| *n == spec.name)
                    .map(|(_, v)| read_simple(spec, shape, v)),
                ParameterIn::Header => {
                    // Accept, Content-Type and Authorization are described elsewhere (§4.7.12.1).
                    let name = spec.name.to_ascii_lowercase();
                    if ["accept", "content-type", "authorization"].contains(&name.as_str()) {
                        continue;
                    }
                    header(&name).map(|v| read_simple(spec, shape, v.trim()))
                }
                ParameterIn::Cookie => {
                    let mut named = cookies.iter().filter(|(n, _)| *n == spec.name);
                    match (named.next(), named.next()) {
                        (Some(_), Some(_)) => Some(Err(ReadError::from("given more than once"))),
                        (Some((_, v)), None) => Some(read_simple(spec, shape, v)),
                        _ => None,
                    }
                }
            };
            match value {
                None if spec.required => {
                    issues.push(Issue::parameter(spec, None, "required parameter is missing"))
                }
                None => {}
                Some(Err(ReadError { pointer, message })) => issues.push(Issue::parameter(
                    spec,
                    (!pointer.is_empty()).then_some(pointer),
                    message,
                )),
                Some(Ok(value)) => {
                    if let Some(checker) = &parameter.checker {
                        // `?flag=` is checked as "" (allowEmptyValue would have let it through).
                        let empty = spec.location == ParameterIn::Query && value.as_str() == Some("");
                        checker.check(
                            &value,
                            limit,
                            |pointer, message| {
                                let message = if empty {
                                    format!("{message} (the value is empty; allowEmptyValue is not set)")
                                } else {
                                    message
                                };
                                Issue::parameter(spec, (!pointer.is_empty()).then_some(pointer), message)
                            },
                            &mut issues,
                        );
                    }
                }
            }
        }
        issues
    }

    /// Checks the request body. `content_type` is the request's header; `body` is `None` or empty
    /// when no body was sent.
    pub fn check_body(
        &self,
        id: OperationId,
        content_type: Option<&str>,
        body: &[u8],
        limit: usize,
    ) -> Result<(), BodyRejection> {
        self.check_body_reading(id, content_type, body, limit, &|_| true)
    }

    /// [`Api::check_body`], parsing only media types `reads` accepts (the others are still
    /// checked for being documented).
    pub fn check_body_reading(
        &self,
        id: OperationId,
        content_type: Option<&str>,
        body: &[u8],
        limit: usize,
        reads: &dyn Fn(&str) -> bool,
    ) -> Result<(), BodyRejection> {
        let Some((required, content)) = self.operation(id).and_then(|o| o.body.as_ref()) else {
            return Ok(());
        };
        // An empty body is no body, whatever Content-Type says (clients send one on empty POSTs).
        if body.is_empty() {
            return if *required {
                Err(BodyRejection::Invalid(vec![Issue::body(
                    "",
                    "request body is required",
                )]))
            } else {
                Ok(())
            };
        }
        let Some(media) = content_type.and_then(|ct| select_media(content, ct)) else {
            return Err(BodyRejection::UnsupportedMediaType {
                allowed: content.iter().map(|m| m.media_type.clone()).collect(),
            });
        };
        let content_type = content_type.unwrap_or("");
        if !reads(content_type) {
            return Ok(());
        }
        check_media(media, content_type, body, limit).map_err(BodyRejection::Invalid)
    }

    /// Checks a response (for report mode): the status must be documented, its media type and
    /// body must match.
    pub fn check_response(
        &self,
        id: OperationId,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
        limit: usize,
    ) -> Vec<Issue> {
        let Some(operation) = self.operation(id) else {
            return Vec::new();
        };
        let exact = status.to_string();
        let range = format!("{}XX", status / 100);
        let Some(content) = [exact.as_str(), range.as_str(), "DEFAULT"]
            .iter()
            .find_map(|s| operation.responses.get(*s))
        else {
            return if operation.responses.is_empty() {
                Vec::new()
            } else {
                vec![Issue::body("", format!("status {status} is not documented"))]
            };
        };
        // HEAD, 204 and 304 answers carry a Content-Type and no body: nothing to check.
        if content.is_empty() || body.is_empty() {
            return Vec::new();
        }
        match content_type.and_then(|ct| select_media(content, ct)) {
            None => vec![Issue::body(
                "",
                format!(
                    "media type {:?} is not documented for status {status}",
                    content_type.unwrap_or("")
                ),
            )],
            Some(media) => check_media(media, content_type.unwrap_or(""), body, limit)
                .err()
                .unwrap_or_default(),
        }
    }
}

fn check_media(media: &Media, content_type: &str, body: &[u8], limit: usize) -> Result<(), Vec<Issue>> {
    let Some(checker) = &media.checker else {
        return Ok(());
    };
    let media_type = essence(content_type);
    let value = if is_json(&media_type) {
        crate::json::parse_strict(body).map_err(|e| vec![Issue::body("", format!("not valid JSON: {e}"))])?
    } else if media_type == FORM {
        let text = std::str::from_utf8(body).map_err(|_| vec![Issue::body("", "form body is not UTF-8")])?;
        read_form(text, &checker.shape, &media.encoding)
            .map_err(|ReadError { pointer, message }| vec![Issue::body(&pointer, message)])?
    } else if media_type.starts_with("text/") {
        let text = std::str::from_utf8(body).map_err(|_| vec![Issue::body("", "text body is not UTF-8")])?;
        Value::String(text.to_string())
    } else {
        // Binary and multipart bodies: the media type is checked, the bytes are not.
        return Ok(());
    };
    let mut issues = Vec::new();
    checker.check(
        &value,
        limit,
        |pointer, message| Issue::body(&pointer, message),
        &mut issues,
    );
    if issues.is_empty() {
        Ok(())
    } else {
        Err(issues)
    }
}

/// The most specific media type entry for a content type: exact, then `type/*`, then `*/*`.
fn select_media<'m>(content: &'m [Media], content_type: &str) -> Option<&'m Media> {
    let essence = essence(content_type);
    let (kind, _) = essence.split_once('/')?;
    let wildcard = format!("{kind}/*");
    content
        .iter()
        .find(|m| m.media_type == essence)
        .or_else(|| content.iter().find(|m| m.media_type == wildcard))
        .or_else(|| content.iter().find(|m| m.media_type == "*/*"))
}
